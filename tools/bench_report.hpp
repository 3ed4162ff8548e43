// What `tessel bench` writes: the measurements as a table, JSON, CSV and an
// SVG plot of GPU time against sequence length, one panel per kernel. The
// JSON is the format bench/peers/ reads and writes too.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tessel/bench/json.hpp"
#include "tessel/bench/timing.hpp"

namespace tessel::cli {

struct bench_row {
  std::string kernel, suite;
  std::string set;    // "issue" (the shapes), "sweep" or "custom" (--shape)
  std::string shape;  // "B=1 H=16 ..."
  std::vector<std::pair<std::string, std::uint32_t>> dims;
  std::string length_dim, length_meaning;
  std::uint32_t length = 0;
  std::string series;  // the shape without the length: one line of the plot
  double bytes = 0, flops = 0;
  int sets = 0;
  bench::timing time;
  double floor_us = 0;  // bytes at the copy rate, or FLOPs at the matrix rate, whichever is longer

  double gbs() const { return bytes / (time.median_us * 1e3); }
  double tflops() const { return flops / (time.median_us * 1e6); }
  double floor_fraction() const { return floor_us / time.median_us; }
};

struct bench_environment {
  std::string device, driver, type;
  bench::copy_rates copy;
  bench::matrix_rates matrix;
  bool quick = false;
};

// The floor of a shape on this device: its bytes at the measured copy rate,
// or its FLOPs at the best measured matrix rate, whichever takes longer.
inline double floor_us(const bench_environment& env, double bytes, double flops) {
  const double memory = bytes / (env.copy.best() * 1e3);
  const double compute = flops > 0 ? flops / (env.matrix.best() * 1e6) : 0;
  return std::max(memory, compute);
}

inline std::string format(const char* spec, double value) {
  char text[64];
  std::snprintf(text, sizeof text, spec, value);
  return text;
}

// --- JSON --------------------------------------------------------------------

inline std::string bench_json(const bench_environment& env, const std::vector<bench_row>& rows) {
  using bench::json_line;
  std::string out = "{\n";
  out += "  \"tool\": \"tessel bench\",\n";
  out += "  \"device\": " +
         json_line().add("name", env.device).add("driver", env.driver).add("type", env.type).str() +
         ",\n";
  out += "  \"copy\": " +
         json_line()
             .add("transfer_gbs", env.copy.transfer_gbs)
             .add("shader_gbs", env.copy.shader_gbs)
             .add("gbs", env.copy.best())
             .str() +
         ",\n";
  json_line matrix;
  matrix.add("fma_tflops", env.matrix.fma_tflops);
  if (env.matrix.coopmat_tflops > 0)
    matrix.add("coopmat_tflops", env.matrix.coopmat_tflops);
  else
    matrix.add_raw("coopmat_tflops", "null");
  out += "  \"matrix\": " + matrix.add("tflops", env.matrix.best()).str() + ",\n";
  out += std::string("  \"quick\": ") + (env.quick ? "true" : "false") + ",\n";
  out += "  \"rows\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const bench_row& r = rows[i];
    json_line dims;
    for (const auto& [name, value] : r.dims) dims.add_raw(name, std::to_string(value));
    json_line row;
    row.add("kernel", r.kernel)
        .add("suite", r.suite)
        .add("set", r.set)
        .add("shape", r.shape)
        .add_raw("dims", dims.str())
        .add("length_dim", r.length_dim)
        .add_raw("length", std::to_string(r.length))
        .add("bytes", r.bytes)
        .add("flops", r.flops)
        .add_raw("sets", std::to_string(r.sets))
        .add_raw("reps", std::to_string(r.time.samples))
        .add("median_us", r.time.median_us)
        .add("p10_us", r.time.p10_us)
        .add("p90_us", r.time.p90_us)
        .add("gbs", r.gbs());
    if (r.flops > 0)
      row.add("tflops", r.tflops());
    else
      row.add_raw("tflops", "null");
    row.add("floor_us", r.floor_us).add("floor_fraction", r.floor_fraction());
    out += (i ? ",\n    " : "\n    ") + row.str();
  }
  return out + "\n  ]\n}\n";
}

// --- CSV ---------------------------------------------------------------------

inline std::string bench_csv(const std::vector<bench_row>& rows) {
  std::string out =
      "kernel,suite,set,shape,length,bytes,flops,sets,reps,median_us,p10_us,p90_us,gbs,tflops,"
      "floor_us,floor_fraction\n";
  for (const bench_row& r : rows) {
    out += r.kernel + "," + r.suite + "," + r.set + ",\"" + r.shape + "\"," +
           std::to_string(r.length) + "," + format("%.0f", r.bytes) + "," +
           format("%.0f", r.flops) + "," + std::to_string(r.sets) + "," +
           std::to_string(r.time.samples) + "," + format("%.3f", r.time.median_us) + "," +
           format("%.3f", r.time.p10_us) + "," + format("%.3f", r.time.p90_us) + "," +
           format("%.2f", r.gbs()) + "," + (r.flops > 0 ? format("%.4f", r.tflops()) : "") + "," +
           format("%.3f", r.floor_us) + "," + format("%.4f", r.floor_fraction()) + "\n";
  }
  return out;
}

// --- the table on stdout -------------------------------------------------------

inline std::string bench_table(const std::vector<bench_row>& rows) {
  std::string out;
  std::string kernel;
  for (const bench_row& r : rows) {
    if (r.kernel != kernel) {
      kernel = r.kernel;
      char header[256];
      std::snprintf(
          header, sizeof header, "%s%s (%s)\n  %-38s %6s %10s %22s %7s %9s %8s %9s %9s %7s\n",
          out.empty() ? "" : "\n", r.kernel.c_str(), r.suite.c_str(), "shape", "sets", "median us",
          "p10 .. p90 us", "spread", "MB", "GB/s", "TFLOP/s", "floor us", "floor");
      out += header;
    }
    char line[256];
    std::snprintf(line, sizeof line,
                  "  %-38s %6d %10.1f %10.1f .. %-8.1f %6.1f%% %9.2f %8.1f %9s %9.1f %6.1f%%\n",
                  r.shape.c_str(), r.sets, r.time.median_us, r.time.p10_us, r.time.p90_us,
                  100 * (r.time.p90_us - r.time.p10_us) / r.time.median_us, r.bytes / 1e6, r.gbs(),
                  r.flops > 0 ? format("%.2f", r.tflops()).c_str() : "-", r.floor_us,
                  100 * r.floor_fraction());
    out += line;
  }
  return out;
}

// --- SVG -----------------------------------------------------------------------

inline std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// Ticks at 1, 2 and 5 times the powers of ten in [low, high].
inline std::vector<double> decade_ticks(double low, double high) {
  std::vector<double> ticks;
  for (double decade = std::pow(10.0, std::floor(std::log10(low))); decade <= high; decade *= 10)
    for (double m : {1.0, 2.0, 5.0})
      if (m * decade >= low && m * decade <= high) ticks.push_back(m * decade);
  return ticks;
}

// One panel per kernel with at least one series of two or more lengths:
// the median GPU time per call against the sequence length, both axes
// logarithmic, the p10-p90 range as a bar at each point, and the floor of
// each series dashed.
inline std::string bench_svg(const bench_environment& env, const std::vector<bench_row>& rows) {
  static constexpr const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                           "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  constexpr double width = 640, height = 360, left = 70, right = 20, top = 40, bottom = 50;
  constexpr double legend = 18;

  // kernel -> series -> rows by length
  std::vector<std::pair<std::string, std::map<std::string, std::vector<const bench_row*>>>> panels;
  for (const bench_row& r : rows) {
    auto panel = std::find_if(panels.begin(), panels.end(),
                              [&](const auto& p) { return p.first == r.kernel; });
    if (panel == panels.end()) panel = panels.insert(panels.end(), {r.kernel, {}});
    panel->second[r.series].push_back(&r);
  }
  for (auto& [kernel, series] : panels) {
    std::erase_if(series, [](const auto& s) { return s.second.size() < 2; });
    for (auto& [key, points] : series)
      std::sort(points.begin(), points.end(),
                [](const bench_row* a, const bench_row* b) { return a->length < b->length; });
  }
  std::erase_if(panels, [](const auto& p) { return p.second.empty(); });

  double total = 50;
  for (const auto& [kernel, series] : panels) total += height + legend * double(series.size()) + 20;
  if (panels.empty()) total += 40;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + format("%.0f", width) +
         "\" height=\"" + format("%.0f", total) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out += "<text x=\"10\" y=\"20\" font-size=\"14\">" + xml_escape("tessel bench on " + env.device) +
         "</text>\n<text x=\"10\" y=\"38\">GPU time per call: median, p10-p90 bar; dashed: the "
         "floor</text>\n";
  if (panels.empty())
    out +=
        "<text x=\"10\" y=\"50\">no kernel was measured at two or more lengths of one "
        "shape</text>\n";

  double y0 = 50;
  for (const auto& [kernel, series] : panels) {
    double lo_x = 1e300, hi_x = 0, lo_y = 1e300, hi_y = 0;
    std::string axis;
    for (const auto& [key, points] : series)
      for (const bench_row* r : points) {
        axis = r->length_dim + " (" + r->length_meaning + ")";
        lo_x = std::min(lo_x, double(r->length));
        hi_x = std::max(hi_x, double(r->length));
        lo_y = std::min({lo_y, r->time.p10_us, r->floor_us});
        hi_y = std::max({hi_y, r->time.p90_us, r->floor_us});
      }
    lo_y = std::max(lo_y, 1e-3) / 1.2;
    hi_y = std::max(hi_y * 1.2, lo_y * 10);
    const double plot_w = width - left - right, plot_h = height - top - bottom;
    const auto px = [&](double x) {
      return left + plot_w * std::log2(x / lo_x) / std::max(std::log2(hi_x / lo_x), 1e-9);
    };
    const auto py = [&](double y) {
      return y0 + top +
             plot_h * (1 - std::log10(std::max(y, lo_y) / lo_y) / std::log10(hi_y / lo_y));
    };
    out += "<g>\n<text x=\"" + format("%.1f", left) + "\" y=\"" + format("%.1f", y0 + 25) +
           "\" font-size=\"14\" font-weight=\"bold\">" + xml_escape(kernel) + "</text>\n";
    out += "<rect x=\"" + format("%.1f", left) + "\" y=\"" + format("%.1f", y0 + top) +
           "\" width=\"" + format("%.1f", plot_w) + "\" height=\"" + format("%.1f", plot_h) +
           "\" fill=\"none\" stroke=\"#888\"/>\n";
    for (double t : decade_ticks(lo_y, hi_y))
      out += "<line x1=\"" + format("%.1f", left) + "\" x2=\"" + format("%.1f", left + plot_w) +
             "\" y1=\"" + format("%.1f", py(t)) + "\" y2=\"" + format("%.1f", py(t)) +
             "\" stroke=\"#ddd\"/>\n<text x=\"" + format("%.1f", left - 5) + "\" y=\"" +
             format("%.1f", py(t) + 4) + "\" text-anchor=\"end\">" + format("%g", t) + "</text>\n";
    std::vector<std::uint32_t> lengths;
    for (const auto& [key, points] : series)
      for (const bench_row* r : points) lengths.push_back(r->length);
    std::sort(lengths.begin(), lengths.end());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
    double last_label = -1e9;  // labels closer than 40 px would overlap
    for (std::uint32_t l : lengths) {
      if (px(l) - last_label < 40) continue;
      last_label = px(l);
      out += "<text x=\"" + format("%.1f", px(l)) + "\" y=\"" +
             format("%.1f", y0 + top + plot_h + 16) + "\" text-anchor=\"middle\">" +
             std::to_string(l) + "</text>\n";
    }
    out += "<text x=\"" + format("%.1f", left + plot_w / 2) + "\" y=\"" +
           format("%.1f", y0 + top + plot_h + 34) + "\" text-anchor=\"middle\">" +
           xml_escape(axis) + "</text>\n";
    out += "<text transform=\"translate(16," + format("%.1f", y0 + top + plot_h / 2) +
           ") rotate(-90)\" text-anchor=\"middle\">GPU time per call (us)</text>\n";
    std::size_t index = 0;
    for (const auto& [key, points] : series) {
      const std::string color = colors[index % std::size(colors)];
      std::string line, floor;
      for (const bench_row* r : points) {
        line += format("%.1f", px(r->length)) + "," + format("%.1f", py(r->time.median_us)) + " ";
        floor += format("%.1f", px(r->length)) + "," + format("%.1f", py(r->floor_us)) + " ";
        out += "<line x1=\"" + format("%.1f", px(r->length)) + "\" x2=\"" +
               format("%.1f", px(r->length)) + "\" y1=\"" + format("%.1f", py(r->time.p10_us)) +
               "\" y2=\"" + format("%.1f", py(r->time.p90_us)) + "\" stroke=\"" + color +
               "\" stroke-width=\"3\" opacity=\"0.5\"/>\n";
        out += "<circle cx=\"" + format("%.1f", px(r->length)) + "\" cy=\"" +
               format("%.1f", py(r->time.median_us)) + "\" r=\"3\" fill=\"" + color + "\"><title>" +
               xml_escape(r->shape + ": " + format("%.1f", r->time.median_us) + " us, " +
                          format("%.0f", 100 * r->floor_fraction()) + "% of the floor") +
               "</title></circle>\n";
      }
      out += "<polyline points=\"" + line + "\" fill=\"none\" stroke=\"" + color + "\"/>\n";
      out += "<polyline points=\"" + floor + "\" fill=\"none\" stroke=\"" + color +
             "\" stroke-dasharray=\"4 3\"/>\n";
      out += "<text x=\"" + format("%.1f", left) + "\" y=\"" +
             format("%.1f", y0 + height + legend * double(index)) + "\" fill=\"" + color + "\">" +
             xml_escape(key) + "</text>\n";
      ++index;
    }
    out += "</g>\n";
    y0 += height + legend * double(series.size()) + 20;
  }
  return out + "</svg>\n";
}

}  // namespace tessel::cli
