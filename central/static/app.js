// vaora central: a little progressive enhancement; every page works without it.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  // Put keyboard focus on the first field with an error, so screen-reader users hear it first.
  const invalid = document.querySelector("[aria-invalid='true']");
  if (invalid) invalid.focus();
});
