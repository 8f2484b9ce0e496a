// Web storage that never throws: a panel framed by a CRM on another site may be denied sessionStorage
// and localStorage (third-party storage blocking); it then keeps its settings in memory for this page.

function open(name) {
  try {
    const store = window[name];
    const probe = "ctid.probe";
    store.setItem(probe, "1");
    store.removeItem(probe);
    return store;
  } catch {
    const memory = new Map();
    return {
      getItem: (key) => (memory.has(key) ? memory.get(key) : null),
      setItem: (key, value) => memory.set(key, String(value)),
      removeItem: (key) => memory.delete(key),
    };
  }
}

export const session = open("sessionStorage");
export const local = open("localStorage");
