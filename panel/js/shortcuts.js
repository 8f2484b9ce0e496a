// Keyboard shortcuts (Alt+Shift+letter, so they never clash with typing or the browser's own keys),
// and arrow-key movement between tabs. docs/panel.md lists them.

import { relation } from "./state.js";

function currentCall(ctx) {
  const calls = [...ctx.state.calls.values()].filter((c) => c.state !== "ended");
  return calls.find((c) => relation(ctx.state, c) === "mine") || calls[0] || null;
}

function press(selector) {
  const button = document.querySelector(selector);
  if (button && !button.disabled) {
    button.click();
    return true;
  }
  return false;
}

export function installShortcuts(ctx) {
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      if (ctx.ui.transfer) ctx.closeTransfer();
      else if (ctx.ui.menuOpen) ctx.toggleMenu(false);
      return;
    }
    const tab = event.target.closest?.('[role="tab"]');
    if (tab && (event.key === "ArrowRight" || event.key === "ArrowLeft" || event.key === "Home" || event.key === "End")) {
      const tabs = [...document.querySelectorAll('[role="tab"]')];
      const index = tabs.indexOf(tab);
      const next = event.key === "Home" ? 0 : event.key === "End" ? tabs.length - 1
        : (index + (event.key === "ArrowRight" ? 1 : -1) + tabs.length) % tabs.length;
      event.preventDefault();
      ctx.showTab(tabs[next].dataset.tab, true);
      return;
    }
    if (!event.altKey || !event.shiftKey || event.ctrlKey || event.metaKey || !ctx.els.header) return;
    const call = currentCall(ctx);
    const id = call ? CSS.escape(call.id) : "";
    const card = call ? `[data-call-id="${id}"]` : null;
    let handled = true;
    switch (event.code) {
      case "KeyD":
        ctx.showTab("dial");
        ctx.dialer.input.focus();
        break;
      case "KeyS":
        document.getElementById("status-select")?.focus();
        break;
      case "KeyO":
        handled = Boolean(card) && press(`${card} .open-record, ${card} [data-action="create-contact"]`);
        break;
      case "KeyH":
        handled = Boolean(card) && (press(`${card} [data-action="hold"]`) || press(`${card} [data-action="unhold"]`));
        break;
      case "KeyT":
        handled = Boolean(card) && press(`${card} [data-action="transfer"]`);
        break;
      case "KeyE":
        handled = Boolean(card) && press(`${card} [data-action="hangup"]`);
        break;
      default: {
        // Alt+Shift+1…9: the n-th section the user sees (agents 3, supervisors 5 with Team and Reports).
        const digit = /^Digit([1-9])$/.exec(event.code);
        const target = digit && ctx.sections()[Number(digit[1]) - 1];
        if (target) ctx.showTab(target, true);
        else handled = false;
      }
    }
    if (handled) event.preventDefault();
  });
}
