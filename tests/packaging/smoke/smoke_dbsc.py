"""``sessionkit[dbsc]``: PyJWT verifies a real ES256 proof, sync and async: a login offers
registration, the endpoint stores the key and sets the bound cookie, and without that
cookie the session is absent."""

from __future__ import annotations

import asyncio
import json

from smokelib import KEY, main


def check() -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from sessionkit import ClientInfo, DbscRequest, SessionConfig, SessionEngine

    engine = SessionEngine(SessionConfig(secret_key=KEY, store="memory://", dbsc=True))
    dbsc = engine.dbsc
    assert dbsc is not None
    client = ClientInfo("127.0.0.1", "smoke", secure=True)
    for flavour in ("sync", "async"):
        session = engine.open(None, client)
        session.bind_user("alice")
        plan = engine.commit(session)
        engine.run(plan)
        cookie = plan.set_cookie.split(";", 1)[0]  # type: ignore[union-attr]
        header = dict(plan.dbsc_headers)["Secure-Session-Registration"]
        challenge = header.split('challenge="', 1)[1].split('"', 1)[0]
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        proof = jwt.encode(
            {"jti": challenge, "aud": "https://x" + dbsc.registration_path},
            key,
            algorithm="ES256",
            headers={"typ": "dbsc+jwt", "jwk": jwk},
        )
        request = DbscRequest(
            "POST",
            dbsc.registration_path,
            "https://x" + dbsc.registration_path,
            {"secure-session-response": f'"{proof}"'},
            cookie,
            client,
        )
        answer = dbsc.handle(request) if flavour == "sync" else asyncio.run(dbsc.ahandle(request))
        assert answer.status == 200, answer.body
        bound = [
            v.split(";", 1)[0]
            for k, v in answer.headers
            if k == "Set-Cookie" and v.startswith("session_bound=")
        ]
        assert bound, answer.headers
        assert engine.open(f"{cookie}; {bound[0]}", client).user_id == "alice"
        assert engine.open(cookie, client).user_id is None


if __name__ == "__main__":
    main(check)
