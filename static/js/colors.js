// Colour-blind-safe colours: viridis / cividis for weights, Paul Tol's palettes for heads.

// 9 anchor colours of each scale (matplotlib's), interpolated to a 256-entry table.
const ANCHORS = {
  viridis: ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"],
  cividis: ["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75", "#c4b56c", "#fee838"],
};

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

function table(name) {
  const stops = ANCHORS[name].map(hex);
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (stops.length - 1);
    const k = Math.min(stops.length - 2, Math.floor(x));
    const f = x - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f;
  }
  return out;
}

export const LUT = { viridis: table("viridis"), cividis: table("cividis") };

// plotly colorscale from the same anchors
export function plotlyScale(name) {
  const a = ANCHORS[name];
  return a.map((c, i) => [i / (a.length - 1), c]);
}

// Tol "muted" (9) then Tol "light" for models with more heads: distinguishable with colour-blindness.
const HEADS = ["#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499",
  "#EE8866", "#77AADD", "#BBCC33", "#FFAABB", "#99DDFF", "#44BB99", "#AAAA00"];

export const headColor = (h) => HEADS[h % HEADS.length];
