using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ExtProc.LoadGen;

/// <summary>Everything one run measured, plus how.</summary>
internal sealed class RunResults
{
    public List<StepResult> ExtProc { get; init; } = [];

    public List<WrkResult> Wrk { get; init; } = [];

    public List<StepResult> Http { get; init; } = [];

    public List<OpenStreamsResult> OpenStreams { get; init; } = [];

    public List<KeyValuePair<string, string>> Configuration { get; init; } = [];

    public List<string> Notes { get; init; } = [];
}

/// <summary>
/// The orchestrator behind <c>bench/run.sh</c>: starts every server as its own process (pinned when there
/// are ≥ 2 cores: clients and the mock on core 0, servers on core 1), runs the ext_proc open-loop steps
/// (echo and ExtProc interleaved at each rate), then the end-to-end comparison, then writes the report.
/// </summary>
internal static class Run
{
    public const string EchoName = "echo";
    public const string ExtProcName = "ExtProc";
    public const string DirectName = "direct";
    public const string DataPlaneEchoName = "harness + echo";
    public const string DataPlaneExtProcName = "harness + ExtProc";
    public const string PortkeyName = "Portkey";
    public const string HttpMix = "chat 200 B over HTTP";

    public const string AfterLoad = " (after the load steps)";

    private static async Task MeasureOpenStreamsAsync(RunResults results, int count, int? serverCore, (string Name, ChildProcess Server)[]? afterLoad)
    {
        var measured = new List<(string Name, ChildProcess Server)>();
        using (var freshEcho = await ChildProcess.ServeAsync("echo-fresh", serverCore, "echo", "--port", FreePort().ToString(CultureInfo.InvariantCulture)))
        using (var freshExtProc = await ChildProcess.ServeAsync("extproc-fresh", serverCore, "extproc", "--port", FreePort().ToString(CultureInfo.InvariantCulture), "--admin-port", FreePort().ToString(CultureInfo.InvariantCulture)))
        {
            foreach (var (name, server) in new[] { (EchoName, freshEcho), (ExtProcName, freshExtProc) })
            {
                await MeasureAsync(name, server);
            }
        }

        foreach (var (name, server) in afterLoad ?? [])
        {
            await MeasureAsync(name, server);
        }

        async Task MeasureAsync(string name, ChildProcess server)
        {
            var open = await OpenStreams.MeasureAsync(name, new Uri(server.Url!), count, server.RssMb);
            results.OpenStreams.Add(open);
            Console.WriteLine($"open streams {name,-8} {open.Opened}/{open.Streams} open: RSS {open.IdleRssMb:0} -> {open.OpenRssMb:0} MB in {open.SecondsToOpen:0.0} s; completed {open.Completed}");
        }
    }

    public static async Task<int> RunAsync(Args args)
    {
        var profile = args.String("profile", "short");
        var smoke = profile == "smoke";
        var rates = args.Ints("rates", smoke ? [100, 200] : [250, 500, 1000, 2000]);
        var step = TimeSpan.FromSeconds(args.Int("step-seconds", smoke ? 2 : 5));
        var openStreams = args.Int("open-streams", smoke ? 200 : 1000);
        var slowDelay = args.Int("slow-provider-ms", 60);
        var wrkSeconds = args.Int("wrk-seconds", smoke ? 2 : 8);
        var wrkConnections = args.Ints("wrk-connections", [1, 16]);
        var httpRates = args.Ints("http-rates", rates);
        var mixes = Payloads.Mixes(args.List("mixes"));
        var output = args.String("out");
        var portkey = args.Has("portkey") ? args.String("portkey") : null;
        var pin = ChildProcess.MachineCores() >= 2 && !args.Has("no-pin");
        int? clientCore = pin ? 0 : null;
        int? serverCore = pin ? 1 : null;
        var work = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, "..", "..", ".artifacts", "loadgen");
        work = Path.GetFullPath(args.String("work", work));
        Directory.CreateDirectory(work);

        var results = new RunResults();
        var config = results.Configuration;
        config.Add(new("commit", args.String("commit", "unknown")));
        config.Add(new("profile", profile));
        config.Add(new("ext_proc arrival rates (RPS)", string.Join(", ", rates)));
        config.Add(new("step length", $"{step.TotalSeconds:0} s per (target, mix, rate), after a 2 s warm-up per (target, mix) at 250 RPS"));
        config.Add(new("mixes", string.Join("; ", mixes.Select(m => m.Body is null ? $"{m.Name} {m.Path}" : $"{m.Name} ({m.Body.Length:N0} B) POST {m.Path}"))));
        config.Add(new("filter", "request headers SEND, request body BUFFERED, response headers SEND, response body NONE, trailers SKIP; message_timeout 1 s; fail closed (as envoy/envoy.yaml)"));
        config.Add(new("pinning", pin
            ? "taskset: load generator, wrk and mock provider on core 0; ExtProc, echo, harness and Portkey on core 1"
            : "none (fewer than 2 cores or --no-pin)"));
        config.Add(new("GC", "server GC in every .NET process"));

        // --unix: the processors listen on Unix sockets too and the emulator connects there (Envoy's pipe address).
        string[] Unix(string name) => args.Has("unix") ? ["--unix", Path.Combine(work, $"{name}-{Environment.ProcessId}.sock")] : [];
        if (args.Has("unix"))
        {
            config.Add(new("ext_proc transport", "Unix domain socket (pipe address) instead of loopback TCP"));
        }

        using var extProcServer = await ChildProcess.ServeAsync("extproc", serverCore, ["extproc", "--port", FreePort().ToString(CultureInfo.InvariantCulture), "--admin-port", FreePort().ToString(CultureInfo.InvariantCulture), .. Unix("extproc")]);
        using var echoServer = await ChildProcess.ServeAsync("echo", serverCore, ["echo", "--port", FreePort().ToString(CultureInfo.InvariantCulture), .. Unix("echo")]);
        Console.WriteLine($"ExtProc pid {extProcServer.Pid} at {extProcServer.Url}; echo pid {echoServer.Pid} at {echoServer.Url}");
        results.Notes.Add($"Idle RSS before load: ExtProc {extProcServer.RssMb():0} MB, echo {echoServer.RssMb():0} MB.");

        if (args.Has("open-streams-only"))
        {
            // Memory A/B runs (GC settings from the environment reach the servers): fresh processes only.
            await MeasureOpenStreamsAsync(results, openStreams, serverCore, afterLoad: null);
            Report.Write(results, output);
            return 0;
        }

        // 1. ext_proc: the emulator (Envoy's client side) against each processor, open loop.
        using (var echo = new ExtProcTarget(new Uri(echoServer.Url!)))
        using (var extProc = new ExtProcTarget(new Uri(extProcServer.Url!)))
        {
            foreach (var mix in mixes)
            {
                OpenLoop.Run(EchoName, mix.Name, 250, TimeSpan.FromSeconds(2), ct => echo.CallAsync(mix, ct));
                OpenLoop.Run(ExtProcName, mix.Name, 250, TimeSpan.FromSeconds(2), ct => extProc.CallAsync(mix, ct));
                foreach (var rate in rates)
                {
                    foreach (var (name, target, server) in new[] { (EchoName, echo, echoServer), (ExtProcName, extProc, extProcServer) })
                    {
                        var result = OpenLoop.Run(name, mix.Name, rate, step, ct => target.CallAsync(mix, ct), server.RssMb, server.CpuMs);
                        results.ExtProc.Add(result);
                        Print(result);
                    }
                }
            }
        }

        // 2. Many ext_proc streams open at once: what each costs in memory, in fresh processes and in the ones
        //    that just served the load steps (their heap keeps what the GC retained from them).
        await MeasureOpenStreamsAsync(results, openStreams, serverCore, [(EchoName + AfterLoad, echoServer), (ExtProcName + AfterLoad, extProcServer)]);
        if (args.Has("ext-proc-only"))
        {
            // For profiling and quick A/B runs: the ext_proc hop only.
            Report.Write(results, output);
            return 0;
        }

        // 3. End to end: HTTP client → (nothing | harness + processor | Portkey) → mock provider.
        var body = Payloads.ChatBody(200);
        using var mock = await ChildProcess.ServeAsync("mock", clientCore, "mock", "--port", FreePort().ToString(CultureInfo.InvariantCulture), "--delay-ms", "0");
        using var planeExtProc = await ChildProcess.ServeAsync("harness-extproc", serverCore, "dataplane", "--processor", extProcServer.Url!, "--upstream", mock.Url!);
        using var planeEcho = await ChildProcess.ServeAsync("harness-echo", serverCore, "dataplane", "--processor", echoServer.Url!, "--upstream", mock.Url!);
        ChildProcess? portkeyServer = null;
        try
        {
            if (portkey is not null)
            {
                var port = FreePort();
                portkeyServer = await ChildProcess.StartExternalAsync("portkey", serverCore, ["node", portkey, "--headless", $"--port={port}"], port);
            }

            var targets = new List<(string Name, Uri Url, List<KeyValuePair<string, string>> Headers, ChildProcess[] Servers)>
            {
                (DirectName, new Uri(mock.Url + Payloads.ChatPath), [], [mock]),
                (DataPlaneEchoName, new Uri(planeEcho.Url + Payloads.ChatPath), [], [planeEcho, echoServer]),
                (DataPlaneExtProcName, new Uri(planeExtProc.Url + Payloads.ChatPath), [], [planeExtProc, extProcServer]),
            };
            if (portkeyServer is not null)
            {
                targets.Add((PortkeyName, new Uri(portkeyServer.Url + Payloads.ChatPath),
                    [new("x-portkey-provider", "openai"), new("x-portkey-custom-host", mock.Url + "/v1")], [portkeyServer]));
            }
            else
            {
                results.Notes.Add("Portkey not measured (no --portkey path given).");
            }

            config.Add(new("end to end", $"POST {Payloads.ChatPath}, {body.Length} B chat body, HTTP/1.1 keep-alive; mock provider answers a {Payloads.Completion.Length} B completion with 0 ms delay"));
            config.Add(new("wrk", $"closed loop: -t1, -c {string.Join(" and ", wrkConnections)}, {wrkSeconds} s each, --latency"));
            config.Add(new("open-loop HTTP", $"HttpClient (SocketsHttpHandler) at {string.Join(", ", httpRates)} RPS, {step.TotalSeconds:0} s each"));

            foreach (var (name, url, headers, _) in targets)
            {
                // Warm: JIT, pools, connections.
                var script = Wrk.WriteScript(Path.Combine(work, $"{Slug(name)}.lua"), body, headers);
                Wrk.Run(name, url, 4, 2, clientCore, script);
            }

            foreach (var connections in wrkConnections)
            {
                foreach (var (name, url, _, _) in targets)
                {
                    var result = Wrk.Run(name, url, connections, wrkSeconds, clientCore, Path.Combine(work, $"{Slug(name)}.lua"));
                    results.Wrk.Add(result);
                    Console.WriteLine($"wrk {name,-18} c={connections,-3} {result.Rps,9:0} rps p50 {result.P50Ms,7:0.000} p99 {result.P99Ms,7:0.000} ms non2xx {result.Non2xx} sockerr {result.SocketErrors}");
                }
            }

            var clients = targets.Where(t => t.Name != DataPlaneEchoName)
                .Select(t => (t.Name, Client: new HttpTarget(t.Url, body, t.Headers), t.Servers)).ToList();
            try
            {
                foreach (var rate in httpRates)
                {
                    foreach (var (name, client, servers) in clients)
                    {
                        // RSS and CPU of the gateway's processes (for direct: the mock's).
                        var result = OpenLoop.Run(name, HttpMix, rate, step, client.CallAsync,
                            () => servers.Sum(s => s.RssMb()), () => servers.Sum(s => s.CpuMs()));
                        results.Http.Add(result);
                        Print(result);
                    }
                }
            }
            finally
            {
                foreach (var (_, client, _) in clients)
                {
                    client.Dispose();
                }
            }

            // 4. The same open loop against a provider that takes 60 ms (a realistic first byte): what the
            //    gateway adds when requests overlap for longer.
            if (slowDelay > 0)
            {
                using var slowMock = await ChildProcess.ServeAsync("mock-slow", clientCore, "mock", "--port", FreePort().ToString(CultureInfo.InvariantCulture), "--delay-ms", slowDelay.ToString(CultureInfo.InvariantCulture));
                using var slowPlane = await ChildProcess.ServeAsync("harness-extproc-slow", serverCore, "dataplane", "--processor", extProcServer.Url!, "--upstream", slowMock.Url!);
                var slowMix = $"{HttpMix}, {slowDelay} ms provider";
                config.Add(new("slow provider", $"open loop again with the mock answering after {slowDelay} ms (its own process; the harness for it too)"));
                var slowTargets = new List<(string Name, HttpTarget Client, ChildProcess[] Servers)>
                {
                    (DirectName, new HttpTarget(new Uri(slowMock.Url + Payloads.ChatPath), body, []), [slowMock]),
                    (DataPlaneExtProcName, new HttpTarget(new Uri(slowPlane.Url + Payloads.ChatPath), body, []), [slowPlane, extProcServer]),
                };
                if (portkeyServer is not null)
                {
                    slowTargets.Add((PortkeyName, new HttpTarget(new Uri(portkeyServer.Url + Payloads.ChatPath), body,
                        [new("x-portkey-provider", "openai"), new("x-portkey-custom-host", slowMock.Url + "/v1")]), [portkeyServer]));
                }

                try
                {
                    foreach (var (name, client, _) in slowTargets)
                    {
                        OpenLoop.Run(name, slowMix, 100, TimeSpan.FromSeconds(2), client.CallAsync);
                    }

                    foreach (var rate in httpRates)
                    {
                        foreach (var (name, client, servers) in slowTargets)
                        {
                            var result = OpenLoop.Run(name, slowMix, rate, step, client.CallAsync,
                                () => servers.Sum(s => s.RssMb()), () => servers.Sum(s => s.CpuMs()));
                            results.Http.Add(result);
                            Print(result);
                        }
                    }
                }
                finally
                {
                    foreach (var (_, client, _) in slowTargets)
                    {
                        client.Dispose();
                    }
                }
            }
        }
        finally
        {
            portkeyServer?.Dispose();
        }

        Report.Write(results, output);
        Console.WriteLine("wrote " + output);
        return 0;
    }

    private static void Print(StepResult r) => Console.WriteLine(
        $"{r.Target,-18} {r.Mix,-22} {r.Rate,5} rps: achieved {r.AchievedRps,7:0} ok {r.Ok,6} err {r.Errors,4} drop {r.Dropped,4} p50 {r.P50Ms,8:0.000} p99 {r.P99Ms,8:0.000} p99.9 {r.P999Ms,8:0.000} ms lag99 {r.DispatchLagP99Ms,6:0.000} rss {r.RssMb,5:0} MB cpu {r.ServerCpuUsPerRequest,6:0} us/req");

    private static string Slug(string name) => new([.. name.Where(char.IsLetterOrDigit)]);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
