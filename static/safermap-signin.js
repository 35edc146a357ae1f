/* The sign-in page: the email/password form posts as a plain form; this script only fills in its
   CSRF token when the server did not (it is the value of the safermap_csrf cookie), and trades a
   pasted access token for the session cookie. */
(function () {
  "use strict";

  function safeNext(value) {
    // Same-origin map and admin paths only ("//host" would leave the site).
    return /^\/(maps|admin)\/[A-Za-z0-9\/_?=&%.-]*$/.test(value || "") && value.indexOf("//") < 0
      ? value : "/maps/overview";
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var passwordForm = document.getElementById("sm-password-sign-in");
    if (passwordForm && !passwordForm.elements.csrf_token.value) {
      passwordForm.elements.csrf_token.value = cookie("safermap_csrf");
    }

    var form = document.getElementById("sm-sign-in");
    if (!form) return;
    var message = document.getElementById("sm-sign-in-message");
    var button = form.querySelector("button");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = form.elements.token.value.trim();
      if (!token) return;
      button.disabled = true;
      message.textContent = "Signing in…";
      fetch("/auth/session", {
        method: "POST",
        headers: { Authorization: "Bearer " + token },
        credentials: "same-origin",
      }).then(function (response) {
        if (response.ok) {
          window.location.assign(safeNext(form.dataset.next));
          return;
        }
        return response.json().catch(function () { return {}; }).then(function (problem) {
          message.textContent = problem.detail || "That token was not accepted.";
          button.disabled = false;
        });
      }).catch(function () {
        message.textContent = "The server could not be reached. Check the connection and try again.";
        button.disabled = false;
      });
    });
  });
})();
