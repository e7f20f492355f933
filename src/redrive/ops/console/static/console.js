// redrive console: select-all for bulk actions, and in-place actions on the detail page.
// Everything works without this script; it only saves reloads.
"use strict";

function setupBulk() {
  const all = document.getElementById("select-all");
  const boxes = () => Array.from(document.querySelectorAll('#bulk input[name="ids"]'));
  const count = document.getElementById("selected-count");
  const refresh = () => {
    const n = boxes().filter((b) => b.checked).length;
    if (count) count.textContent = n + " selected";
    document.querySelectorAll("[data-needs-selection]").forEach((b) => { b.disabled = n === 0; });
    if (all) all.checked = n > 0 && n === boxes().length;
  };
  if (all) all.addEventListener("change", () => { boxes().forEach((b) => { b.checked = all.checked; }); refresh(); });
  boxes().forEach((b) => b.addEventListener("change", refresh));
  refresh();
}

function showStatus(data) {
  const badge = document.getElementById("status");
  if (badge && data.status) {
    badge.textContent = data.status;
    badge.className = "badge big s-" + data.status;
  }
  if (Array.isArray(data.actions)) {
    document.querySelectorAll("[data-action]").forEach((el) => {
      el.hidden = !data.actions.includes(el.dataset.action);
    });
  }
}

// After an in-place action every panel of the record changes (payload, replays, next
// attempt, timeline): fetch the page again and swap its main part, without a reload.
async function refreshPage() {
  try {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = document.querySelector("main");
    const next = fresh.querySelector("main");
    if (!main || !next) return;
    next.querySelectorAll("p.flash:not(#message)").forEach((el) => el.remove());
    main.replaceChildren(...Array.from(next.childNodes).map((n) => document.importNode(n, true)));
    setupAsyncForms();
    setupBulk();
    setupConfirm();
    setupRefresh();
  } catch (err) {
    // keep the old panels; the message still says what happened
  }
}

function setupAsyncForms() {
  document.querySelectorAll("form[data-async]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        // getAttribute: form.action would be the input named "action" (DOM clobbering).
        const response = await fetch(form.getAttribute("action"), {
          method: "POST", body: new FormData(form, event.submitter),
          headers: { Accept: "application/json" }, credentials: "same-origin",
        });
        const data = await response.json().catch(() => ({ ok: false, message: "Unexpected answer (" + response.status + ")" }));
        if (data.redirect) { window.location.assign(data.redirect); return; }
        if (typeof data.status === "string") showStatus(data);  // a problem's status is a number
        if (data.ok || response.status === 409) await refreshPage();
        const shown = document.getElementById("message");
        if (shown) { shown.textContent = data.message; shown.hidden = false; shown.classList.toggle("error", !data.ok); }
      } catch (err) {
        const message = document.getElementById("message");
        if (message) { message.textContent = "The server did not answer: " + err; message.hidden = false; }
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  });
}

// Every mass action asks first, naming the count: forms with data-confirm, and the bulk
// buttons (their question counts the selected rows).
function setupConfirm() {
  document.querySelectorAll("form[data-confirm]:not([data-async])").forEach((form) => {
    if (form.dataset.confirmReady) return;
    form.dataset.confirmReady = "1";
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  const bulk = document.getElementById("bulk");
  if (bulk && !bulk.dataset.confirmReady) {
    bulk.dataset.confirmReady = "1";
    bulk.addEventListener("submit", (event) => {
      const verb = event.submitter && event.submitter.dataset.confirmVerb;
      if (!verb) return;
      const n = bulk.querySelectorAll('input[name="ids"]:checked').length;
      const question = verb + " " + n.toLocaleString("en-US") + " selected record" + (n === 1 ? "" : "s") + "?";
      if (!window.confirm(question)) event.preventDefault();
    });
  }
}

// Pages that change by themselves (a running replay) ask to be refreshed: data-refresh
// holds the seconds between two looks. The overview and the list have a "Live" box
// (off by default, remembered in this browser) that polls every 5 seconds.
const LIVE_KEY = "redrive-live";
let refreshTimer = null;
function setupRefresh() {
  if (refreshTimer) { clearTimeout(refreshTimer); refreshTimer = null; }
  const live = document.querySelector("input[data-live]");
  if (live) {
    live.checked = window.localStorage.getItem(LIVE_KEY) === "on";
    if (!live.dataset.ready) {
      live.dataset.ready = "1";
      live.addEventListener("change", () => {
        window.localStorage.setItem(LIVE_KEY, live.checked ? "on" : "off");
        setupRefresh();
      });
    }
  }
  const holder = document.querySelector("[data-refresh]");
  const seconds = holder ? Number(holder.dataset.refresh) : (live && live.checked ? 5 : 0);
  if (!seconds) return;
  refreshTimer = setTimeout(async () => {
    const busy = document.activeElement && ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)
      && !document.activeElement.matches("input[data-live]");
    const selected = document.querySelector('#bulk input[name="ids"]:checked');
    if (document.hidden || busy || selected) { setupRefresh(); return; }  // never lose what the user is doing
    await refreshPage();
  }, Math.max(1, seconds) * 1000);
}

// On a phone the filter form folds away unless a filter is set (it is open without JS).
function setupFold() {
  if (!window.matchMedia("(max-width: 800px)").matches) return;
  document.querySelectorAll("details.fold:not([data-active])").forEach((d) => { d.open = false; });
}

document.addEventListener("DOMContentLoaded", () => { setupFold(); setupBulk(); setupAsyncForms(); setupConfirm(); setupRefresh(); });
