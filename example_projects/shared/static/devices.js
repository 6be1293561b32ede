// "Your active sessions": the sign-out buttons call the sessions API (JSON, same-origin;
// the browser adds Sec-Fetch-Site and Origin itself) instead of posting their forms.
// Without JavaScript the forms still post to the page's own routes.
(function () {
  "use strict";
  const api = document.currentScript.dataset.api;

  function notice(level, text) {
    const main = document.querySelector("main");
    main.querySelectorAll(".flash").forEach((old) => old.remove());
    const line = document.createElement("p");
    line.className = "flash flash-" + level;
    line.setAttribute("role", "status");
    line.textContent = text;
    main.prepend(line);
  }

  async function call(method, path) {
    const response = await fetch(api + path, { method, headers: { Accept: "application/json" } });
    return { status: response.status, body: await response.json() };
  }

  function failed(answer) {
    notice("warning", "Could not sign out: " + (answer.body.detail || answer.status));
  }

  document.querySelectorAll("tr.other-session form").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const row = form.closest("tr");
      const handle = row.dataset.handle;
      const answer = await call("DELETE", encodeURIComponent(handle));
      if (answer.status === 200 || answer.status === 404) {
        row.remove();
        notice(answer.status === 200 ? "success" : "warning", answer.status === 200
          ? "Session " + handle + " was signed out."
          : "Session " + handle + " had already ended.");
      } else {
        failed(answer);
      }
    });
  });

  const others = document.getElementById("revoke-others-form");
  if (others) {
    others.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await call("POST", "revoke-others");
      if (answer.status !== 200) return failed(answer);
      document.querySelectorAll("tr.other-session").forEach((row) => row.remove());
      notice("success", "Signed out " + answer.body.revoked + " other session(s).");
    });
  }
})();
