import Foundation

/// A small SVG chart: lines with markers, or grouped bars; a title, labelled axes with round
/// ticks, reference lines and a legend. Only what the study's report draws.
struct SVGChart {
    struct Point: Equatable {
        var x: Double
        var y: Double
    }

    struct Series {
        var name: String
        var points: [Point]
        var dashed = false
        var markers = true
        /// A colour of its own; by default the palette's, in series order.
        var color: String?
    }

    /// A horizontal or vertical reference line with its label.
    struct Reference {
        var value: Double
        var label: String
    }

    enum Style {
        case lines
        /// Bars grouped by `groups` (x = 0, 1, … indexes them); each series is one bar of each group.
        case bars(groups: [String])
    }

    enum Format {
        case plain
        /// Fractions shown as percentages.
        case percent
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var style: Style = .lines
    var series: [Series] = []
    var horizontal: [Reference] = []
    var vertical: [Reference] = []
    var xFormat: Format = .plain
    var yFormat: Format = .plain
    /// Axis ranges; by default the data's, widened to round ticks.
    var xRange: ClosedRange<Double>?
    var yRange: ClosedRange<Double>?

    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    private let width = 760.0, height = 460.0
    private let left = 72.0, right = 210.0, top = 48.0, bottom = 62.0

    init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    /// Round tick positions covering `range`: steps of 1, 2, 2.5 or 5 × 10ᵏ, about `count` of them.
    static func ticks(_ range: ClosedRange<Double>, count: Int = 6) -> [Double] {
        let span = range.upperBound - range.lowerBound
        guard span > 0, span.isFinite else { return [range.lowerBound] }
        let raw = span / Double(max(1, count - 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = ceil(range.lowerBound / step - 1e-6), last = floor(range.upperBound / step + 1e-6)
        guard last >= first else { return [range.lowerBound] }
        return stride(from: first, through: last, by: 1).map { clean($0 * step) }
    }

    /// `range` widened to the round ticks around it.
    static func rounded(_ range: ClosedRange<Double>) -> ClosedRange<Double> {
        var lo = range.lowerBound, hi = range.upperBound
        if hi - lo < 1e-12 { (lo, hi) = (lo - max(1e-3, abs(lo) * 0.05), hi + max(1e-3, abs(hi) * 0.05)) }
        let raw = (hi - lo) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        return clean(floor(lo / step + 1e-9) * step)...clean(ceil(hi / step - 1e-9) * step)
    }

    /// `v` to 12 significant digits: 0.6000000000000001 → 0.6.
    private static func clean(_ v: Double) -> Double { Double(String(format: "%.12g", v)) ?? v }

    private func label(_ v: Double, _ format: Format, step: Double) -> String {
        // The fewest decimals that show the step exactly (2.5 → 1, 0.02 → 2).
        let decimals: (Double) -> Int = { s in (0...4).first { d in let v = s * pow(10, Double(d)); return abs(v - v.rounded()) < 1e-6 * max(1, v) } ?? 4 }
        switch format {
        case .plain: return String(format: "%.\(decimals(step))f", v)
        case .percent: return String(format: "%.\(decimals(step * 100))f%%", v * 100)
        }
    }

    /// The SVG document.
    func svg() -> String {
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var xs = all.map(\.x) + vertical.map(\.value), ys = all.map(\.y) + horizontal.map(\.value)
        if case .bars(let groups) = style { xs = [-0.5, Double(groups.count) - 0.5]; ys.append(0) }
        let xr: ClosedRange<Double>
        if let xRange { xr = xRange } else if case .bars = style { xr = (xs.min() ?? 0)...(xs.max() ?? 1) } else { xr = SVGChart.rounded((xs.min() ?? 0)...(xs.max() ?? 1)) }
        let yr = yRange ?? SVGChart.rounded((ys.min() ?? 0)...(ys.max() ?? 1))
        func px(_ x: Double) -> Double { left + (x - xr.lowerBound) / max(1e-12, xr.upperBound - xr.lowerBound) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (y - yr.lowerBound) / max(1e-12, yr.upperBound - yr.lowerBound) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(left + plotW / 2))" y="26" text-anchor="middle" font-size="16" font-weight="bold">\(escape(title))</text>

        """
        // Grid and ticks.
        let yTicks = SVGChart.ticks(yr)
        let yStep = yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1
        for t in yTicks {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(t)))\" stroke=\"#e4e4e4\"/>\n"
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(label(t, yFormat, step: yStep))</text>\n"
        }
        switch style {
        case .lines:
            let xTicks = SVGChart.ticks(xr)
            let xStep = xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1
            for t in xTicks {
                s += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + plotH))\" stroke=\"#f0f0f0\"/>\n"
                s += "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(label(t, xFormat, step: xStep))</text>\n"
            }
        case .bars(let groups):
            for (i, g) in groups.enumerated() {
                s += "<text x=\"\(f(px(Double(i))))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(escape(g))</text>\n"
            }
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 16))\" text-anchor=\"middle\" font-size=\"13\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(18 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">\(escape(yLabel))</text>\n"

        // Reference lines.
        for r in horizontal where yr.contains(r.value) {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(r.value)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(r.value)))\" stroke=\"#555\" stroke-dasharray=\"6 4\"/>\n"
            s += "<text x=\"\(f(left + 6))\" y=\"\(f(py(r.value) - 5))\" fill=\"#555\">\(escape(r.label))</text>\n"
        }
        for r in vertical where xr.contains(r.value) {
            s += "<line x1=\"\(f(px(r.value)))\" y1=\"\(f(top))\" x2=\"\(f(px(r.value)))\" y2=\"\(f(top + plotH))\" stroke=\"#B00\" stroke-dasharray=\"3 3\"/>\n"
            s += "<text x=\"\(f(px(r.value) + 4))\" y=\"\(f(top + 14))\" fill=\"#B00\">\(escape(r.label))</text>\n"
        }

        // Data.
        for (i, series) in series.enumerated() {
            let color = series.color ?? SVGChart.palette[i % SVGChart.palette.count]
            let points = series.points.filter { $0.x.isFinite && $0.y.isFinite }
            switch style {
            case .lines:
                if points.count > 1 {
                    let path = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                    s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(series.dashed ? " stroke-dasharray=\"7 4\"" : "")/>\n"
                }
                if series.markers {
                    for p in points { s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"\(color)\"/>\n" }
                }
            case .bars:
                let n = Double(self.series.count)
                let slot = 0.8 / n
                for p in points {
                    let x0 = px(p.x - 0.4 + Double(i) * slot), x1 = px(p.x - 0.4 + Double(i + 1) * slot)
                    let y0 = py(max(yr.lowerBound, min(p.y, yr.upperBound))), base = py(max(yr.lowerBound, 0))
                    s += "<rect x=\"\(f(x0))\" y=\"\(f(min(y0, base)))\" width=\"\(f(max(1, x1 - x0 - 1)))\" height=\"\(f(abs(base - y0)))\" fill=\"\(color)\"/>\n"
                }
            }
        }

        // Legend.
        let lx = left + plotW + 16
        for (i, series) in series.enumerated() {
            let color = series.color ?? SVGChart.palette[i % SVGChart.palette.count]
            let y = top + 8 + Double(i) * 20
            if case .bars = style {
                s += "<rect x=\"\(f(lx))\" y=\"\(f(y - 6))\" width=\"18\" height=\"10\" fill=\"\(color)\"/>\n"
            } else {
                s += "<line x1=\"\(f(lx))\" y1=\"\(f(y))\" x2=\"\(f(lx + 18))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"2\"\(series.dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
                if series.markers { s += "<circle cx=\"\(f(lx + 9))\" cy=\"\(f(y))\" r=\"3.5\" fill=\"\(color)\"/>\n" }
            }
            s += "<text x=\"\(f(lx + 24))\" y=\"\(f(y + 4))\">\(escape(series.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
