// Which token is in focus: one home for hover, focus, lock and release, shared by the explorer, the
// embeds and the lesson. It works on any Store (store.js) with `token` (-1: none) and `locked`:
// hovering or keyboard-focusing a token moves the focus unless one is locked; a click (or Enter)
// locks it, a second click or Esc releases. Arrow keys, Home and End move between the chips.

export function tokenFocus(store) {
  const locked = () => store.get("locked");
  const hover = (i) => { if (!locked()) store.set({ token: i }); };
  const leave = () => { if (!locked()) store.set({ token: -1 }); };
  const toggle = (i) => (locked() && store.get("token") === i ? store.set({ locked: false }) : store.set({ token: i, locked: true }));
  const release = () => { if (locked()) store.set({ locked: false, token: -1 }); };
  // keys on chip i of chips (a roving tabindex: one chip in the tab order, arrows move it)
  const key = (e, i, chips) => {
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: chips.length - 1 }[e.key];
    if (to !== undefined) {
      e.preventDefault();
      const j = Math.max(0, Math.min(chips.length - 1, to));
      chips[i].tabIndex = -1;
      chips[j].tabIndex = 0;
      chips[j].focus();
      if (locked()) store.set({ token: j });
    } else if (e.key === "Escape") {
      release();
    }
  };
  return { hover, leave, toggle, release, key };
}

// Handlers that do nothing, for static views (a frozen embed, a figure that only shows).
export const noFocus = { hover() {}, leave() {}, toggle() {}, release() {}, key() {} };
