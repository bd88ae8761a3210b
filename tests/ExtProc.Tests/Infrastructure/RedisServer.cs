using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ExtProc.Tests.Infrastructure;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port, in its own temp directory, without persistence.
/// Fault tests can kill it (SIGKILL), hang it (SIGSTOP), resume it (SIGCONT) and restart it on the
/// same port. The binary comes from Debian's package (tests/test.sh installs it); when it is missing
/// the test fails under CI=true and says how to install it everywhere else: it never silently skips.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _directory;
    private Process? _process;

    private RedisServer(string binary, int port, string directory)
    {
        Binary = binary;
        Port = port;
        _directory = directory;
    }

    public string Binary { get; }

    public int Port { get; }

    /// <summary>StackExchange.Redis connection string for this server.</summary>
    public string Endpoint => $"127.0.0.1:{Port}";

    public bool IsRunning => _process is { HasExited: false };

    public static async Task<RedisServer> StartAsync()
    {
        var binary = FindBinary()
            ?? throw new InvalidOperationException(
                "redis-server was not found on PATH. Install it (apt-get install -y redis-server); tests/test.sh does this on CI.");
        var directory = Directory.CreateTempSubdirectory("extproc-redis-").FullName;
        var server = new RedisServer(binary, FreePort(), directory);
        await server.LaunchAsync();
        return server;
    }

    /// <summary>SIGKILL: the server dies without closing its connections cleanly.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            process.WaitForExit();
        }
    }

    /// <summary>SIGSTOP: connections stay open, nothing is answered (a hung server).</summary>
    public void Pause() => Signal("STOP");

    /// <summary>SIGCONT: a paused server answers again, including what it queued meanwhile.</summary>
    public void Resume() => Signal("CONT");

    /// <summary>Kills the server if it runs and starts a fresh, empty one on the same port.</summary>
    public async Task RestartAsync()
    {
        Kill();
        _process?.Dispose();
        _process = null;
        await LaunchAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            Signal("CONT");
            Kill();
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a dying process: the temp directory is cleaned by the OS later.
        }

        await Task.CompletedTask;
    }

    private async Task LaunchAsync()
    {
        var start = new ProcessStartInfo(Binary)
        {
            WorkingDirectory = _directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--dir", _directory,
            "--save", string.Empty,
            "--appendonly", "no",
            "--protected-mode", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited at start with code {process.ExitCode}.");
            }

            if (await AnswersPingAsync())
            {
                return;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"redis-server did not answer PING on port {Port} within 10 s.");
    }

    private async Task<bool> AnswersPingAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray());
            var buffer = new byte[16];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var read = await stream.ReadAsync(buffer, timeout.Token);
            return read >= 5 && buffer.AsSpan(0, 5).SequenceEqual("+PONG"u8);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void Signal(string signal)
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }

        using var kill = Process.Start(new ProcessStartInfo("kill", $"-{signal} {process.Id}") { UseShellExecute = false })
            ?? throw new InvalidOperationException("kill did not start.");
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} failed with code {kill.ExitCode}.");
        }
    }

    private static string? FindBinary()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator))
        {
            var candidate = Path.Combine(directory, "redis-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return File.Exists("/usr/bin/redis-server") ? "/usr/bin/redis-server" : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
