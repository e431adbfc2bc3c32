function render({ model, el }) {
  const size = 168;
  const pad = document.createElement("div");
  pad.className = "emovae-pad-area";
  pad.tabIndex = 0;
  pad.title = "drag to blend the four corners; arrow keys move by 5 %";
  pad.style.cssText = `position:relative;width:${size}px;height:${size}px;border:1px solid #999;` +
    "border-radius:6px;background:linear-gradient(135deg,#f3e6f5,#e3eef8);touch-action:none;" +
    "cursor:crosshair;user-select:none;outline-offset:2px";
  const dot = document.createElement("div");
  dot.style.cssText = "position:absolute;width:12px;height:12px;margin:-8px 0 0 -8px;border-radius:50%;" +
    "background:#c2185b;border:2px solid #fff;box-shadow:0 0 2px #000;pointer-events:none";
  const where = ["left:4px;top:2px", "right:4px;top:2px;text-align:right", "left:4px;bottom:2px",
                 "right:4px;bottom:2px;text-align:right"];
  const labels = where.map(css => {
    const s = document.createElement("span");
    s.style.cssText = "position:absolute;max-width:" + (size / 2 - 6) + "px;overflow:hidden;white-space:nowrap;" +
      "text-overflow:ellipsis;font-size:10px;line-height:12px;color:#333;pointer-events:none;" + css;
    pad.appendChild(s);
    return s;
  });
  pad.appendChild(dot);
  const draw = () => {
    const p = model.get("position") || [0.5, 0.5];
    dot.style.left = (p[0] * size) + "px";
    dot.style.top = (p[1] * size) + "px";
    const names = model.get("labels") || [];
    labels.forEach((s, i) => { s.textContent = names[i] || ""; s.title = names[i] || ""; });
  };
  const send = (x, y) => {
    x = Math.min(1, Math.max(0, x)); y = Math.min(1, Math.max(0, y));
    model.set("position", [x, y]);
    model.save_changes();
    draw();
  };
  let dragging = false;
  const at = ev => {
    const r = pad.getBoundingClientRect();
    send((ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height);
  };
  pad.addEventListener("pointerdown", ev => {
    dragging = true; pad.focus();
    try { pad.setPointerCapture(ev.pointerId); } catch (e) {}
    at(ev); ev.preventDefault();
  });
  pad.addEventListener("pointermove", ev => { if (dragging) at(ev); });
  const stop = () => { dragging = false; };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  pad.addEventListener("keydown", ev => {
    const d = { ArrowLeft: [-0.05, 0], ArrowRight: [0.05, 0], ArrowUp: [0, -0.05], ArrowDown: [0, 0.05] }[ev.key];
    if (!d) return;
    const p = model.get("position") || [0.5, 0.5];
    send(p[0] + d[0], p[1] + d[1]);
    ev.preventDefault();
  });
  model.on("change:position", draw);
  model.on("change:labels", draw);
  draw();
  el.classList.add("emovae-pad");
  el.appendChild(pad);
}
export default { render };
