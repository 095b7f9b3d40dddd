// Live wallboard: redraws the three tables from the server-sent JSON snapshots.
// Values are set with textContent only, so nothing from the server becomes markup.
"use strict";
(function () {
  const pct = (v) => (v === null || v === undefined ? "n/a" : (v * 100).toFixed(1) + " %");
  const secs = (v) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(1) + " s");
  const plain = (v) => (v === null || v === undefined ? "n/a" : String(v));
  const columns = {
    queues: [["name", plain], ["waiting", plain], ["longest_wait", secs], ["sl_today", pct],
             ["asa_today", secs], ["abandoned_today", plain]],
    agents: [["id", plain], ["state", plain], ["in_state", secs], ["reason", plain]],
    vendors: [["name", plain], ["channels", plain], ["status", plain], ["sl_today", pct]],
  };
  function fill(id, items) {
    const body = document.querySelector("#" + id + " tbody");
    const rows = document.createDocumentFragment();
    for (const item of items) {
      const tr = document.createElement("tr");
      for (const [key, fmt] of columns[id]) {
        const td = document.createElement("td");
        td.dataset.col = key;
        td.textContent = fmt(item[key]);
        tr.appendChild(td);
      }
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
  }
  const source = new EventSource("/portal/events");
  source.onmessage = (message) => {
    const snap = JSON.parse(message.data);
    fill("queues", snap.queues);
    fill("agents", snap.agents);
    fill("vendors", snap.vendors.map((v) => Object.assign({}, v, {
      channels: v.in_use + "/" + v.max, status: v.up ? "up" : "down" })));
    document.getElementById("peers").textContent = snap.peers.length === 0 ? "" :
      "Other nodes: " + snap.peers.map((p) => p.url + " " + (p.up ? "up" : "DOWN")).join(", ");
    document.getElementById("updated").textContent =
      new Date(snap.at * 1000).toLocaleTimeString();
  };
})();
