/* The users page: ask before destructive actions; select a shown password on click. The forms
   themselves are plain posts carrying their CSRF token, so the page works without this script. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    var secret = document.getElementById("sm-secret");
    if (secret) {
      secret.addEventListener("click", function () {
        var range = document.createRange();
        range.selectNodeContents(secret);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      });
    }
  });
})();
