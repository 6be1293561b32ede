"""What the three example apps share: settings, layout, stylesheet, device labels and the
per-request account of what sessionkit did."""
