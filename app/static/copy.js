// Copy buttons: <button class="copy" data-copy="value">. Falls back to a selection copy off HTTPS.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var value = button.getAttribute("data-copy");
  var done = function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(value).then(done, function () { fallback(value); done(); });
  } else {
    fallback(value);
    done();
  }
});

function fallback(value) {
  var area = document.createElement("textarea");
  area.value = value;
  area.setAttribute("readonly", "");
  area.style.position = "absolute";
  area.style.left = "-9999px";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); } catch (e) { /* the value stays visible to copy by hand */ }
  document.body.removeChild(area);
}
