// The dialer: click-to-call through ctid (the agent's phone rings first, then the number).

import { h } from "../dom.js";
import { t } from "../i18n.js";
import { canDial } from "../state.js";

/** Build the dialer once (it keeps what the operator typed); ``update()`` enables or disables it. */
export function createDialer(ctx) {
  const input = h("input", {
    id: "dial-number", type: "tel", inputmode: "tel", autocomplete: "off", placeholder: "+7 916 123-45-67",
    "aria-describedby": "dial-hint",
  });
  const button = h("button.primary", { type: "submit", id: "dial-button" }, t("call"));
  const hint = h("p.hint", { id: "dial-hint" });
  const form = h("form.dialer", {
    "aria-label": t("dialer"),
    onsubmit: async (event) => {
      event.preventDefault();
      const number = input.value.trim();
      if (!number) {
        input.focus();
        return;
      }
      button.disabled = true;
      const ok = await ctx.act("Dial", number);
      button.disabled = !canDial(ctx.state);
      if (ok) {
        hint.textContent = t("dialingNumber", { number });
        input.value = "";
      }
    },
  },
  h("label", { for: "dial-number" }, t("dialNumber")),
  h("div.row", {}, input, button), hint);
  return {
    element: form,
    input,
    update() {
      const possible = canDial(ctx.state);
      input.disabled = button.disabled = !possible;
      if (!possible && ctx.state.me) hint.textContent = t("dialUnavailable");
      else if (hint.textContent === t("dialUnavailable")) hint.textContent = "";
    },
    prefill(number) {
      input.value = number;
      input.focus();
    },
  };
}
