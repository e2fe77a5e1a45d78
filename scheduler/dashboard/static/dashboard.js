// Progressive enhancement only: every page works without it. It adds each instant in the
// viewer's own zone beside the zoned time the server wrote (title and a "local" line).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.title = `${el.title} · yours: ${fmt.format(when)}`;
  }
  for (const el of document.querySelectorAll(".local[data-utc]")) {
    const when = new Date(el.dataset.utc);
    if (!isNaN(when)) el.textContent = `yours: ${fmt.format(when)}`;
  }
});
