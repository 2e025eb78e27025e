// Berth's web pages: progressive enhancement only; every page works without it.
// Copy buttons: a button with data-copy copies that text through the Clipboard API.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) {
    return;
  }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(b.getAttribute("data-copy")).then(
        function () {
          b.textContent = "Copied";
          setTimeout(function () {
            b.textContent = "Copy";
          }, 1500);
        },
        function () {
          b.textContent = "Copy failed";
        }
      );
    });
  });
});
