// plotly.js is a classic script loaded with `async` (it is 4.8 MB to evaluate): views that do not
// need it draw first, and charts wait for this promise.

export function plotlyReady() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  const tag = document.getElementById("plotly-js");
  return new Promise((resolve, reject) => {
    tag.addEventListener("load", () => resolve(window.Plotly), { once: true });
    tag.addEventListener("error", () => reject(new Error("plotly.js could not be loaded")), { once: true });
  });
}
