using System.Diagnostics;
using System.Globalization;

namespace ExtProc.LoadGen;

/// <summary>A server process started by the run (optionally pinned with taskset), stopped by its id.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;

    private ChildProcess(string name, Process process, string? url)
    {
        Name = name;
        _process = process;
        Url = url;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    /// <summary>What the server printed after READY (its base address), if it speaks that protocol.</summary>
    public string? Url { get; }

    /// <summary>Starts this program again in <c>serve</c> mode.</summary>
    public static Task<ChildProcess> ServeAsync(string name, int? core, params string[] args)
    {
        var self = Environment.ProcessPath!;
        var command = new List<string>();
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            command.Add(self);
            command.Add(typeof(ChildProcess).Assembly.Location);
        }
        else
        {
            command.Add(self);
        }

        command.Add("serve");
        command.AddRange(args);
        return StartAsync(name, core, command, line => line.StartsWith("READY ", StringComparison.Ordinal) ? line[6..] : null, readyPort: null);
    }

    /// <summary>Starts any program and waits until <paramref name="readyPort"/> accepts connections.</summary>
    public static Task<ChildProcess> StartExternalAsync(string name, int? core, IReadOnlyList<string> command, int readyPort) =>
        StartAsync(name, core, command, null, readyPort);

    private static async Task<ChildProcess> StartAsync(string name, int? core, IReadOnlyList<string> command,
        Func<string, string?>? ready, int? readyPort)
    {
        var info = new ProcessStartInfo
        {
            FileName = core is null ? command[0] : "taskset",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (core is { } c)
        {
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(c.ToString(CultureInfo.InvariantCulture));
            info.ArgumentList.Add(command[0]);
        }

        foreach (var arg in command.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        // Server GC as shipped, unless the run's own environment says otherwise (GC A/B runs).
        info.Environment["DOTNET_gcServer"] = Environment.GetEnvironmentVariable("DOTNET_gcServer") ?? "1";

        // No thread-pool spin-waiting: on a shared core it burns CPU that is not the request's cost (both
        // processors get the same setting).
        info.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + name);
        var url = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && ready?.Invoke(line) is { } u)
            {
                url.TrySetResult(u);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (!string.IsNullOrWhiteSpace(e.Data))
            {
                Console.Error.WriteLine($"[{name}] {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var child = new ChildProcess(name, process, null);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            if (readyPort is { } port)
            {
                await WaitForPortAsync(port, process, timeout.Token);
                return new ChildProcess(name, process, $"http://127.0.0.1:{port}");
            }

            var address = await url.Task.WaitAsync(timeout.Token);
            return new ChildProcess(name, process, address);
        }
        catch
        {
            child.Dispose();
            throw;
        }
    }

    private static async Task WaitForPortAsync(int port, Process process, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"process exited with {process.ExitCode} before listening on {port}");
            }

            try
            {
                using var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cancellationToken);
                return;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(200, cancellationToken);
            }
        }
    }

    /// <summary>Resident set size in MB from /proc (0 when unavailable).</summary>
    public double RssMb()
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var kb = long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
                    return kb / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }

    /// <summary>CPU time (user + system, every thread) the process has used so far, in ms, from
    /// /proc/&lt;pid&gt;/stat (clock ticks of 10 ms).</summary>
    public double CpuMs()
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{Pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return ticks * 10.0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>Cores of the machine (not this process's affinity, which taskset narrows).</summary>
    public static int MachineCores()
    {
        try
        {
            var count = File.ReadLines("/proc/cpuinfo").Count(l => l.StartsWith("processor", StringComparison.Ordinal));
            return count > 0 ? count : Environment.ProcessorCount;
        }
        catch (IOException)
        {
            return Environment.ProcessorCount;
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
