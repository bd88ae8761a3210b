using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace ExtProc.LoadGen;

/// <summary>Writes the dated markdown results file and the SVG chart next to it.</summary>
internal static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>NaN marks a step with no successful request.</summary>
    public static readonly System.Text.Json.JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Write(RunResults results, string markdownPath)
    {
        var svgPath = Path.ChangeExtension(markdownPath, ".svg");
        File.WriteAllText(svgPath, Chart(results));
        File.WriteAllText(markdownPath, Markdown(results, Path.GetFileName(svgPath)));
        File.WriteAllText(Path.ChangeExtension(markdownPath, ".json"), System.Text.Json.JsonSerializer.Serialize(results, JsonOptions));
    }

    private static string Markdown(RunResults r, string svgName)
    {
        var md = new StringBuilder();
        var date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", Inv);
        md.Append(Inv, $"# Load generator and end-to-end run, {date}\n\n");
        md.Append("Produced by `bench/run.sh` (see `bench/README.md`). Every figure comes with the baseline measured in the same run and the ratio to it; absolute times are context only (shared, noisy 2-core machine).\n\n");
        md.Append("## Machine and configuration\n\n| | |\n| --- | --- |\n");
        md.Append(Inv, $"| nproc | {ChildProcess.MachineCores()} |\n");
        md.Append(Inv, $"| CPU | {CpuModel()} |\n");
        md.Append(Inv, $"| .NET | {RuntimeInformation.FrameworkDescription} ({RuntimeInformation.OSDescription}) |\n");
        foreach (var (key, value) in r.Configuration)
        {
            md.Append(Inv, $"| {key} | {value} |\n");
        }

        md.Append(Inv, $"\n![p99 against arrival rate]({svgName})\n\n");

        // ext_proc: ExtProc against echo.
        md.Append("## ext_proc hop: ExtProc against the echo processor (open loop)\n\n");
        md.Append("**Server CPU per request** is the processor process's user + system CPU time over the step (every thread, GC included, from /proc/<pid>/stat, 10 ms ticks) divided by the requests it served: the per-request cost, and the steadiest figure on a shared machine. **Latency** is the whole exchange as the emulated Envoy sees it (request headers → buffered body → upstream → response headers → response complete), measured from each request's scheduled send time; it includes the emulator's own work on the load-generator core. Ratio = ExtProc / echo at the same rate and mix.\n\n");
        md.Append("| mix | rate | CPU/req echo (µs) | CPU/req ExtProc (µs) | CPU ratio | echo p50 | ExtProc p50 | p50 ratio | echo p99 | ExtProc p99 | p99 ratio | echo p99.9 | ExtProc p99.9 | achieved echo / ExtProc | errors echo / ExtProc | dropped | dispatch lag p99 echo / ExtProc | RSS echo / ExtProc (MB) |\n");
        md.Append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        foreach (var ext in r.ExtProc.Where(x => x.Target == Run.ExtProcName))
        {
            var echo = r.ExtProc.FirstOrDefault(x => x.Target == Run.EchoName && x.Mix == ext.Mix && x.Rate == ext.Rate);
            if (echo is null)
            {
                continue;
            }

            md.Append(Inv, $"| {ext.Mix} | {ext.Rate:N0} | {echo.ServerCpuUsPerRequest:0} | {ext.ServerCpuUsPerRequest:0} | **{Ratio(ext.ServerCpuUsPerRequest, echo.ServerCpuUsPerRequest)}** | {Ms(echo.P50Ms)} | {Ms(ext.P50Ms)} | {Ratio(ext.P50Ms, echo.P50Ms)} | {Ms(echo.P99Ms)} | {Ms(ext.P99Ms)} | {Ratio(ext.P99Ms, echo.P99Ms)} | {Ms(echo.P999Ms)} | {Ms(ext.P999Ms)} | {echo.AchievedRps:0} / {ext.AchievedRps:0} | {echo.Errors} / {ext.Errors} | {echo.Dropped} / {ext.Dropped} | {Ms(echo.DispatchLagP99Ms)} / {Ms(ext.DispatchLagP99Ms)} | {echo.RssMb:0} / {ext.RssMb:0} |\n");
        }

        md.Append("\nTimes in ms. *Dispatch lag* is how late the load generator itself sent requests (p99 over the step): it is included in the latency (which runs from the scheduled time), and when it is large the load generator's core, not the processor, was the bottleneck of that step.\n\n");

        // e2e wrk.
        if (r.Wrk.Count > 0)
        {
            md.Append("## End to end, closed loop (wrk)\n\n");
            md.Append("`wrk` is closed loop: a fixed number of connections, each sending its next request when the previous answer arrives. Its latency is therefore the latency at the rate the target sustains with that many connections (not at a fixed rate); throughput is what it sustains. Ratios are against `direct` (wrk straight to the mock) at the same connection count; *added* = target − direct.\n\n");
            md.Append("| target | connections | requests/s | vs direct | p50 | added p50 | p90 | p99 | added p99 | non-2xx | socket errors |\n");
            md.Append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
            foreach (var w in r.Wrk)
            {
                var direct = r.Wrk.First(x => x.Target == Run.DirectName && x.Connections == w.Connections);
                md.Append(Inv, $"| {w.Target} | {w.Connections} | {w.Rps:N0} | {Ratio(w.Rps, direct.Rps)} | {Ms(w.P50Ms)} | {Ms(w.P50Ms - direct.P50Ms)} | {Ms(w.P90Ms)} | {Ms(w.P99Ms)} | {Ms(w.P99Ms - direct.P99Ms)} | {w.Non2xx} | {w.SocketErrors} |\n");
            }

            md.Append('\n');
        }

        if (r.Http.Count > 0)
        {
            md.Append("## End to end, open loop (HttpClient at fixed rates)\n\n");
            md.Append("Same request and mock as wrk; latency from the scheduled send time. *added* = target − direct at the same rate.\n\n");
            md.Append("Server RSS and CPU/request are summed over the gateway's processes (harness + processor; Portkey's node process); for `direct` they are the mock's.\n\n");
            md.Append("| provider delay | target | rate | achieved | p50 | p99 | p99.9 | added p50 | added p99 | errors | dropped | server RSS (MB) | server CPU/req (µs) |\n");
            md.Append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
            foreach (var h in r.Http)
            {
                var direct = r.Http.First(x => x.Target == Run.DirectName && x.Rate == h.Rate && x.Mix == h.Mix);
                md.Append(Inv, $"| {DelayOf(h.Mix)} | {h.Target} | {h.Rate:N0} | {h.AchievedRps:0} | {Ms(h.P50Ms)} | {Ms(h.P99Ms)} | {Ms(h.P999Ms)} | {Ms(h.P50Ms - direct.P50Ms)} | {Ms(h.P99Ms - direct.P99Ms)} | {h.Errors} | {h.Dropped} | {h.RssMb:0} | {h.ServerCpuUsPerRequest:0} |\n");
            }

            md.Append('\n');
        }

        if (r.OpenStreams.Count > 0)
        {
            md.Append("## Open streams\n\n");
            md.Append("Each processor holds N ext_proc streams open at once: the requests sent their headers (answered) and half of a 10 KB body, then wait; RSS is the processor process's, the highest of five samples after 1 s; then every request is let finish.\n\n");
            md.Append("| processor | streams | open at once | idle RSS (MB) | RSS with them open (MB) | per open stream (KB) | time to open all (s) | completed afterwards |\n");
            md.Append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
            foreach (var o in r.OpenStreams)
            {
                md.Append(Inv, $"| {o.Target} | {o.Streams:N0} | {o.Opened:N0} | {o.IdleRssMb:0} | {o.OpenRssMb:0} | {(o.OpenRssMb - o.IdleRssMb) * 1024 / Math.Max(1, o.Opened):0.0} | {o.SecondsToOpen:0.0} | {o.Completed:N0} |\n");
            }

            md.Append('\n');
        }

        md.Append("## Against the targets of issue 8\n\n");
        md.Append(TargetsSection(r));
        if (r.Notes.Count > 0)
        {
            md.Append("\n## Notes\n\n");
            foreach (var note in r.Notes)
            {
                md.Append("- ").Append(note).Append('\n');
            }
        }

        return md.ToString();
    }

    private static string TargetsSection(RunResults r)
    {
        var md = new StringBuilder();
        md.Append("| target | measured | verdict |\n| --- | --- | --- |\n");
        var tenKb = r.ExtProc.Where(x => x.Mix == "chat 10 KB" && x.Target == Run.ExtProcName).ToList();
        foreach (var ext in tenKb)
        {
            var echo = r.ExtProc.First(x => x.Target == Run.EchoName && x.Mix == ext.Mix && x.Rate == ext.Rate);
            var ratio = ext.ServerCpuUsPerRequest / echo.ServerCpuUsPerRequest;

            // CPU per served request says nothing once requests fail: a saturated step is not a pass.
            var saturated = ext.Errors + ext.Dropped > ext.Scheduled / 100;
            md.Append(Inv, $"| 10 KB agent request ≤ 1.5× echo's per-request cost ({ext.Rate:N0} RPS) | server CPU/req {Ratio(ext.ServerCpuUsPerRequest, echo.ServerCpuUsPerRequest)} ({ext.ServerCpuUsPerRequest:0} vs {echo.ServerCpuUsPerRequest:0} µs); exchange latency p50 {Ratio(ext.P50Ms, echo.P50Ms)}, p99 {Ratio(ext.P99Ms, echo.P99Ms)} | {(saturated ? $"not met: saturated ({ext.Errors + ext.Dropped:N0} of {ext.Scheduled:N0} failed)" : ratio <= 1.5 ? "met" : "not met")} |\n");
        }

        var top = r.Http.Where(x => x.Target == Run.DataPlaneExtProcName && x.Mix == Run.HttpMix).OrderByDescending(x => x.Rate).FirstOrDefault();
        if (top is not null)
        {
            var direct = r.Http.First(x => x.Target == Run.DirectName && x.Rate == top.Rate && x.Mix == top.Mix);
            var added = top.P99Ms - direct.P99Ms;
            var addedP50 = top.P50Ms - direct.P50Ms;

            // A negative difference means the baseline step itself was disturbed (a stall of the shared
            // machine): no verdict from it. The added p50 must fit too.
            var verdict = top.Rate < 2000 ? "not measured at 2,000 RPS"
                : added < 0 ? $"inconclusive: the direct step's p99 was disturbed; added p50 {addedP50:0.000} ms" + (addedP50 > 1 ? " already exceeds 1 ms, so not met" : string.Empty)
                : added <= 1 && addedP50 <= 1 ? "met" : "not met";
            md.Append(Inv, $"| e2e p99 added over direct ≤ 1 ms at 2,000 RPS (harness + ExtProc, {top.Rate:N0} RPS) | added p99 {added:0.000} ms ({Ms(top.P99Ms)} vs {Ms(direct.P99Ms)}), added p50 {addedP50:0.000} ms | {verdict}; the harness is a C# emulation of Envoy's HCM + ext_proc filter + router, so this includes its cost (compare `harness + echo` in the wrk table) |\n");
        }

        var ours = r.Wrk.Where(x => x.Target == Run.DataPlaneExtProcName).OrderByDescending(x => x.Connections).FirstOrDefault();
        var peer = ours is null ? null : r.Wrk.FirstOrDefault(x => x.Target == Run.PortkeyName && x.Connections == ours.Connections);
        if (ours is not null && peer is not null)
        {
            md.Append(Inv, $"| sustainable rate ≥ 5× Portkey's (wrk, {ours.Connections} connections; p99 {Ms(ours.P99Ms)} vs {Ms(peer.P99Ms)} ms) | {Ratio(ours.Rps, peer.Rps)} ({ours.Rps:N0} vs {peer.Rps:N0} req/s) | {(ours.Rps >= 5 * peer.Rps ? "met" : "not met")} |\n");
        }
        else
        {
            md.Append("| sustainable rate ≥ 5× Portkey's | not measured in this run | — |\n");
        }

        var open = r.OpenStreams.FirstOrDefault(o => o.Target == Run.ExtProcName);
        var loaded = r.OpenStreams.FirstOrDefault(o => o.Target == Run.ExtProcName + Run.AfterLoad);
        if (open is not null)
        {
            var afterLoad = loaded is null ? string.Empty : string.Create(Inv, $"; {loaded.OpenRssMb:0} MB in the process that had just served the load steps (idle {loaded.IdleRssMb:0} MB: heap the GC kept from them)");
            md.Append(Inv, $"| RSS ≤ 150 MB with 1,000 open streams | {open.OpenRssMb:0} MB with {open.Opened:N0} streams open in a fresh process (idle {open.IdleRssMb:0} MB){afterLoad} | {(open.Opened >= 1000 ? (open.OpenRssMb <= 150 ? "met" : "not met") + (loaded is not null ? (loaded.OpenRssMb <= 150 ? " (after load: met)" : " (after load: not met)") : string.Empty) : "not judged (fewer streams)")} |\n");
        }
        else
        {
            var rss = r.ExtProc.Where(x => x.Target == Run.ExtProcName).Select(x => x.RssMb).DefaultIfEmpty(0).Max();
            md.Append(Inv, $"| RSS ≤ 150 MB with 1,000 open streams | not measured in this run; highest ExtProc RSS over every step: {rss:0} MB | — |\n");
        }

        md.Append("| translation ≥ 500 MB/s per core | BenchmarkDotNet's job (`bench/results/*-engine.md`), not this run | — |\n");
        return md.ToString();
    }

    private static string Chart(RunResults r)
    {
        var panels = r.ExtProc.Select(x => x.Mix).Distinct().Select(mix => (Title: "ext_proc: " + mix, Steps: r.ExtProc.Where(x => x.Mix == mix).ToList())).ToList();
        foreach (var mix in r.Http.Select(x => x.Mix).Distinct())
        {
            panels.Add(($"end to end (open loop, {(mix == Run.HttpMix ? "200 B chat" : "200 B chat, " + DelayOf(mix) + " provider")})", r.Http.Where(x => x.Mix == mix).ToList()));
        }

        const int panelW = 420, panelH = 300, margin = 50, cols = 3;
        var rows = (panels.Count + cols - 1) / cols;
        var width = cols * panelW;
        var height = rows * panelH + 40;
        var colors = new Dictionary<string, string>
        {
            [Run.EchoName] = "#1f77b4",
            [Run.ExtProcName] = "#d62728",
            [Run.DirectName] = "#2ca02c",
            [Run.DataPlaneExtProcName] = "#d62728",
            [Run.PortkeyName] = "#9467bd",
        };
        var svg = new StringBuilder();
        svg.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        svg.Append(Inv, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        svg.Append(Inv, $"<text x=\"10\" y=\"22\" font-size=\"15\">p99 latency (ms, log scale) against arrival rate (RPS) — {DateTime.UtcNow:yyyy-MM-dd}</text>\n");
        for (var p = 0; p < panels.Count; p++)
        {
            var (title, steps) = panels[p];
            var ox = (p % cols) * panelW + margin;
            var oy = (p / cols) * panelH + 40 + 20;
            var w = panelW - margin - 20;
            var h = panelH - 80;
            var rates = steps.Select(s => s.Rate).Distinct().Order().ToList();
            var values = steps.Select(s => s.P99Ms).Where(v => v > 0 && !double.IsNaN(v)).ToList();
            if (values.Count == 0 || rates.Count == 0)
            {
                continue;
            }

            var lo = Math.Floor(Math.Log10(values.Min()));
            var hi = Math.Ceiling(Math.Log10(values.Max()));
            if (hi <= lo)
            {
                hi = lo + 1;
            }

            double X(int rate) => ox + (rates.Count == 1 ? w / 2.0 : rates.IndexOf(rate) * w / (double)(rates.Count - 1));
            double Y(double ms) => oy + h - (Math.Log10(Math.Max(ms, Math.Pow(10, lo))) - lo) / (hi - lo) * h;
            svg.Append(Inv, $"<text x=\"{ox}\" y=\"{oy - 8}\" font-size=\"12\" font-weight=\"bold\">{Escape(title)}</text>\n");
            svg.Append(Inv, $"<rect x=\"{ox}\" y=\"{oy}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#888\"/>\n");
            for (var d = lo; d <= hi; d++)
            {
                var y = Y(Math.Pow(10, d));
                svg.Append(Inv, $"<line x1=\"{ox}\" x2=\"{ox + w}\" y1=\"{y:0.0}\" y2=\"{y:0.0}\" stroke=\"#ddd\"/><text x=\"{ox - 6}\" y=\"{y + 4:0.0}\" text-anchor=\"end\">{Math.Pow(10, d).ToString("0.###", Inv)}</text>\n");
            }

            foreach (var rate in rates)
            {
                svg.Append(Inv, $"<text x=\"{X(rate):0.0}\" y=\"{oy + h + 14}\" text-anchor=\"middle\">{rate}</text>\n");
            }

            var legend = 0;
            foreach (var target in steps.Select(s => s.Target).Distinct())
            {
                var color = colors.GetValueOrDefault(target, "#555");
                var points = steps.Where(s => s.Target == target && s.P99Ms > 0 && !double.IsNaN(s.P99Ms)).OrderBy(s => s.Rate)
                    .Select(s => $"{X(s.Rate):0.0},{Y(s.P99Ms):0.0}").ToList();
                svg.Append(Inv, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(' ', points)}\"/>\n");
                foreach (var point in points)
                {
                    var xy = point.Split(',');
                    svg.Append(Inv, $"<circle cx=\"{xy[0]}\" cy=\"{xy[1]}\" r=\"3\" fill=\"{color}\"/>\n");
                }

                svg.Append(Inv, $"<rect x=\"{ox + 8}\" y=\"{oy + 8 + legend * 14}\" width=\"10\" height=\"3\" fill=\"{color}\"/><text x=\"{ox + 22}\" y=\"{oy + 13 + legend * 14}\">{Escape(target)}</text>\n");
                legend++;
            }
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static string DelayOf(string mix) => mix == Run.HttpMix ? "0 ms" : mix[(mix.LastIndexOf(',') + 2)..];

    private static string Ms(double ms) => double.IsNaN(ms) ? "—" : ms.ToString(Math.Abs(ms) < 10 ? "0.000" : "0.0", Inv);

    private static string Ratio(double value, double baseline) =>
        baseline > 0 && !double.IsNaN(value) && !double.IsNaN(baseline) ? (value / baseline).ToString("0.00", Inv) + "×" : "—";

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal);

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
