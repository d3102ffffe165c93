// The unread count as a badge on the tab's icon: the page's icon drawn on a canvas with a red disc and the
// count, put into <link rel="icon"> as a data: PNG (the page's CSP allows img-src data:). No unread: the icon.

const SIZE = 64;
const BADGE = "#d1242f";

const link = document.querySelector('link[rel="icon"]');
const plain = link?.getAttribute("href") || "";
let base = null; // the icon, loaded once
let shown = 0;
let wanted = 0;

function loadBase() {
  if (!base) {
    base = new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => resolve(null); // the badge alone, then
      img.src = plain;
    });
  }
  return base;
}

const label = (count) => (count > 99 ? "99+" : String(count));

/** Draw `count` on the icon (0: the plain icon). Later calls win over earlier ones still drawing. */
export async function setFaviconBadge(count) {
  wanted = Math.max(0, Number(count) || 0);
  if (!link || wanted === shown) return;
  if (wanted === 0) {
    shown = 0;
    link.setAttribute("href", plain);
    link.setAttribute("type", "image/svg+xml");
    delete link.dataset.unread;
    return;
  }
  const count_ = wanted;
  const img = await loadBase();
  if (count_ !== wanted) return;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIZE;
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  if (img) ctx.drawImage(img, 0, 0, SIZE, SIZE);
  const text = label(count_);
  const radius = text.length > 2 ? 22 : 19;
  const cx = SIZE - radius;
  const cy = radius;
  ctx.beginPath();
  ctx.arc(cx, cy, radius, 0, 2 * Math.PI);
  ctx.fillStyle = BADGE;
  ctx.fill();
  ctx.fillStyle = "#fff";
  ctx.font = `bold ${text.length > 2 ? 20 : text.length > 1 ? 26 : 30}px sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, cx, cy + 1);
  shown = count_;
  link.setAttribute("type", "image/png");
  link.setAttribute("href", canvas.toDataURL("image/png"));
  link.dataset.unread = String(count_);
}
