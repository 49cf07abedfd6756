// Placeholder: the console's script (h/console replaces this file). It asks who is logged in.
"use strict";
fetch("/api/v1/session", { credentials: "same-origin" }).then((r) => {
  document.getElementById("status").textContent = r.ok ? "logged in" : "not logged in";
});
