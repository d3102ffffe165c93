// "Save as PNG": a picture of the message's HTML as the preview shows it, made in the browser with no library.
// The sanitized preview (the same document the iframe shows) is fetched as a parsed document (XHR, never as
// markup put into this page), its images are inlined as data: URLs, and it is drawn as an SVG <foreignObject>
// image onto a canvas. A marker at the end of the body says where the message ends, so the picture is cut there.

const MARKER = [255, 0, 254]; // a colour no mail is drawn in exactly
const FIRST_HEIGHT = 2400; // CSS pixels tried first; taller messages are drawn once more, up to MAX_HEIGHT
const MAX_HEIGHT = 12000;

function loadDocument(url) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.responseType = "document";
    xhr.onload = () => (xhr.status === 200 && xhr.responseXML ? resolve(xhr.responseXML) : reject(new Error(`the preview answered ${xhr.status}`)));
    xhr.onerror = () => reject(new Error("the preview could not be loaded"));
    xhr.send();
  });
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** An SVG image may load nothing itself: each <img> the preview would show is put in as a data: URL. */
async function inlineImages(doc, base) {
  await Promise.all([...doc.querySelectorAll("img[src]")].map(async (img) => {
    const src = img.getAttribute("src");
    if (src.startsWith("data:")) return;
    try {
      const url = new URL(src, base);
      if (url.origin !== location.origin) throw new Error("remote");
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      img.setAttribute("src", await dataUrl(await response.blob()));
    } catch {
      img.removeAttribute("src"); // as the preview shows a blocked image: its box, no picture
    }
    img.removeAttribute("srcset");
  }));
}

function draw(svgText, width, height) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, width, height);
      ctx.drawImage(img, 0, 0, width, height);
      resolve(canvas);
    };
    img.onerror = () => reject(new Error("the browser could not draw this HTML"));
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svgText)}`;
  });
}

/** The first row of the end marker (the last run of its colour, antialiased edges included); -1: not drawn. */
function markerRow(canvas) {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const x = Math.floor(canvas.width / 2);
  const column = ctx.getImageData(x, 0, 1, canvas.height).data;
  const exact = (y) => column[y * 4] === MARKER[0] && column[y * 4 + 1] === MARKER[1] && column[y * 4 + 2] === MARKER[2];
  const tinted = (y) => column[y * 4] > 160 && column[y * 4 + 2] > 160 && column[y * 4 + 1] < Math.min(column[y * 4], column[y * 4 + 2]) - 8;
  let y = canvas.height - 1;
  while (y >= 0 && !exact(y)) y--;
  if (y < 0) return -1;
  while (y > 0 && tinted(y - 1)) y--;
  return y;
}

/**
 * A PNG (Blob) of the message's sanitized HTML at `width` CSS pixels, as tall as the message (at most
 * MAX_HEIGHT: `clipped` says so). Remote images are left out unless `remote` (the reader loaded them).
 */
export async function snapshotPng(previewUrl, width, { remote = false } = {}) {
  const url = new URL(previewUrl, document.baseURI);
  if (remote) url.searchParams.set("remote", "1");
  const doc = await loadDocument(url.href);
  await inlineImages(doc, url.href);
  const marker = doc.createElement("div");
  marker.setAttribute("style", `clear: both; display: block; height: 2px; margin: 0; padding: 0; border: 0; background: rgb(${MARKER.join(",")});`);
  doc.body.append(marker);
  const bodyMargin = 8; // a body's usual bottom margin, below the marker
  const xhtml = new XMLSerializer().serializeToString(doc.documentElement);
  let height = FIRST_HEIGHT;
  for (;;) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><foreignObject x="0" y="0" width="${width}" height="${height}">${xhtml}</foreignObject></svg>`;
    const canvas = await draw(svg, width, height);
    const row = markerRow(canvas);
    if (row < 0 && height < MAX_HEIGHT) {
      height = MAX_HEIGHT;
      continue;
    }
    // Cut where the marker begins (it is not part of the message); the body's bottom margin is drawn again
    // below, in the colour of the row just above the marker.
    const end = row < 0 ? height : row;
    const out = document.createElement("canvas");
    out.width = width;
    out.height = Math.max(1, row < 0 ? height : end + bodyMargin);
    const ctx = out.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(canvas, 0, 0, width, end, 0, 0, width, end);
    if (row >= 2) ctx.drawImage(canvas, 0, row - 2, width, 1, 0, end, width, bodyMargin);
    const blob = await new Promise((resolve) => out.toBlob(resolve, "image/png"));
    if (!blob) throw new Error("the browser could not make a PNG");
    return { blob, width, height: out.height, clipped: row < 0 };
  }
}
