/* uhi report: the interactive cell map. Reads the JSON block #uhi-cells, draws every cell on a
   Leaflet canvas (no tile layer, so the page works offline), colours it by the chosen layer,
   and shows a cell's values on click. */
(function () {
  "use strict";
  var holder = document.getElementById("uhi-cells");
  var target = document.getElementById("cell-map");
  if (!holder || !target || typeof L === "undefined") { return; }
  var data = JSON.parse(holder.textContent);
  var layers = data.layers;
  var current = layers[0];

  function hexToRgb(hex) {
    var v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  function ramp(colors, t) {
    if (!isFinite(t)) { return null; }
    t = Math.min(1, Math.max(0, t));
    var pos = t * (colors.length - 1);
    var i = Math.min(colors.length - 2, Math.floor(pos));
    var f = pos - i;
    var a = hexToRgb(colors[i]);
    var b = hexToRgb(colors[i + 1]);
    var c = [0, 1, 2].map(function (k) { return Math.round(a[k] + f * (b[k] - a[k])); });
    return "rgb(" + c.join(",") + ")";
  }

  function colourOf(layer, value) {
    if (value === null || value === undefined) { return null; }
    if (layer.kind === "classes") {
      for (var i = 0; i < layer.classes.length; i++) {
        if (layer.classes[i].value === value) { return layer.classes[i].color; }
      }
      return null;
    }
    return ramp(layer.colors, (value - layer.vmin) / (layer.vmax - layer.vmin));
  }

  function style(feature) {
    var fill = colourOf(current, feature.properties[current.key]);
    return {
      stroke: false,
      fillColor: fill || "#dddddd",
      fillOpacity: fill ? 0.85 : 0.35
    };
  }

  function fmt(value) {
    if (value === null || value === undefined) { return "no data"; }
    if (typeof value === "number") { return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2); }
    return String(value);
  }

  function popup(layer) {
    var p = layer.feature.properties;
    var rows = ["<b>cell " + p.cell + "</b>"];
    layers.forEach(function (l) {
      var v = p[l.key];
      if (l.kind === "classes") {
        l.classes.forEach(function (c) { if (c.value === v) { v = c.label; } });
      }
      rows.push(l.label + ": " + fmt(v) + (l.units && typeof v === "number" ? " " + l.units : ""));
    });
    return rows.join("<br>");
  }

  var map = L.map(target, { preferCanvas: true, zoomSnap: 0.25, attributionControl: true });
  map.attributionControl.setPrefix("Leaflet");
  map.attributionControl.addAttribution(data.credits);
  var cells = L.geoJSON(data.cells, { style: style }).bindPopup(popup).addTo(map);
  map.fitBounds(data.bounds);

  var legend = L.control({ position: "bottomright" });
  legend.onAdd = function () {
    this._div = L.DomUtil.create("div", "uhi-legend");
    L.DomEvent.disableClickPropagation(this._div);
    return this._div;
  };
  function drawLegend() {
    var html = "<b>" + current.label + (current.units ? " (" + current.units + ")" : "") + "</b><br>";
    if (current.kind === "classes") {
      current.classes.forEach(function (c) {
        html += '<i style="background:' + c.color + '"></i>' + c.label + "<br>";
      });
    } else {
      html += '<span class="uhi-ramp" style="background:linear-gradient(to right,' +
        current.colors.join(",") + ')"></span><br>' +
        '<span class="uhi-lo">' + fmt(current.vmin) + "</span>" +
        '<span class="uhi-hi">' + fmt(current.vmax) + "</span>";
    }
    legend._div.innerHTML = html;
  }
  legend.addTo(map);

  var chooser = L.control({ position: "topright" });
  chooser.onAdd = function () {
    var div = L.DomUtil.create("div", "uhi-chooser");
    var select = L.DomUtil.create("select", "", div);
    select.id = "cell-layer";
    layers.forEach(function (l, i) {
      var opt = document.createElement("option");
      opt.value = String(i);
      opt.textContent = l.label;
      select.appendChild(opt);
    });
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.on(select, "change", function () {
      current = layers[Number(select.value)];
      cells.setStyle(style);
      drawLegend();
    });
    return div;
  };
  chooser.addTo(map);
  drawLegend();
  L.control.scale({ imperial: false }).addTo(map);
  target.setAttribute("data-cells", String(data.cells.features.length));
})();
