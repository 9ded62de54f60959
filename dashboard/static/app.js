// Small behaviours without inline script (the Content-Security-Policy forbids it):
// region boxes placed over frames, the heat-map toggle, and keyboard shortcuts in the queues.
"use strict";

function placeRegions() {
  document.querySelectorAll(".region[data-box]").forEach((el) => {
    const [x, y, w, h] = el.dataset.box.split(",").map(Number);
    const [fw, fh] = el.dataset.frame.split(",").map(Number);
    Object.assign(el.style, {
      left: `${(100 * x) / fw}%`, top: `${(100 * y) / fh}%`,
      width: `${(100 * w) / fw}%`, height: `${(100 * h) / fh}%`,
    });
  });
}

function toggleOverlays(kind) {
  document.querySelectorAll(`.overlay.${kind}`).forEach((el) => el.classList.toggle("hidden"));
  const box = document.getElementById("heatmap-toggle");
  if (box && kind === "heatmap") box.checked = !box.checked;
}

function currentQueueItem() {
  return document.querySelector("[data-queue-item]");
}

function submitWith(item, key) {
  const button = item.querySelector(`button[data-key="${key}"]`);
  if (!button) return false;
  const reason = item.querySelector('input[name="reason"]');
  if (!reason.value.trim()) {
    reason.focus();
    reason.placeholder = "a reason is required";
    return true;
  }
  button.click();
  return true;
}

document.addEventListener("DOMContentLoaded", () => {
  placeRegions();
  const item = currentQueueItem();
  if (item) item.classList.add("current");
  const toggle = document.getElementById("heatmap-toggle");
  if (toggle) toggle.addEventListener("change", () => {
    document.querySelectorAll(".overlay.heatmap").forEach((el) => el.classList.toggle("hidden", !toggle.checked));
  });
  document.querySelectorAll("button[data-reason]").forEach((b) => b.addEventListener("click", () => {
    b.closest("form").querySelector('input[name="reason"]').value = b.dataset.reason;
  }));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.matches("input, select, textarea");
    const key = event.key.toLowerCase();
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (key === "h") toggleOverlays("heatmap");
    else if (key === "m") toggleOverlays("mask");
    else if (item && /^[1-9]$/.test(key)) {
      const quick = item.querySelectorAll("button[data-reason]")[Number(key) - 1];
      if (quick) quick.click();
    } else if (item && submitWith(item, key)) event.preventDefault();
  });
});
