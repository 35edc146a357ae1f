/* The sign-in page: trade the pasted bearer token for the session cookie, then go on. */
(function () {
  "use strict";

  function safeNext(value) {
    // Same-origin paths only ("//host" would leave the site).
    return /^\/maps\/[A-Za-z0-9\/_?=&%.-]*$/.test(value || "") ? value : "/maps/overview";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("sm-sign-in");
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
