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
// "Chọn tất cả": a checkbox with data-select-all="NAME" ticks every checkbox NAME of its form (data-scope: a form id).
document.addEventListener("change", (event) => {
  const box = event.target;
  const name = box.getAttribute && box.getAttribute("data-select-all");
  if (!name) return;
  const scope = box.getAttribute("data-scope") || (box.form && box.form.id);
  document.querySelectorAll(`input[type=checkbox][name="${name}"]`).forEach((item) => {
    if (!scope || item.getAttribute("form") === scope || (item.form && item.form.id === scope)) {
      item.checked = box.checked;
    }
  });
});
