using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace ExtProc.LoadGen;

/// <summary>One closed-loop wrk run: fixed connections, as many requests as they can do.</summary>
internal sealed record WrkResult(string Target, int Connections, double Rps, double P50Ms, double P90Ms, double P99Ms, long Requests, long Non2xx, long SocketErrors);

internal static partial class Wrk
{
    public static WrkResult Run(string target, Uri url, int connections, int seconds, int? core, string scriptPath)
    {
        var info = new ProcessStartInfo { FileName = core is null ? "wrk" : "taskset", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (core is { } c)
        {
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(c.ToString(CultureInfo.InvariantCulture));
            info.ArgumentList.Add("wrk");
        }

        foreach (var arg in new[] { "-t1", $"-c{connections}", $"-d{seconds}s", "--latency", "-s", scriptPath, url.ToString() })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit((seconds + 30) * 1000))
        {
            process.Kill();
        }

        var text = output.GetAwaiter().GetResult();
        if (process.ExitCode != 0)
        {
            Console.Error.WriteLine($"[wrk {target}] exit {process.ExitCode}: {error.GetAwaiter().GetResult()}");
        }

        return new WrkResult(
            target,
            connections,
            Number(RpsRegex(), text),
            Latency(text, "50%"),
            Latency(text, "90%"),
            Latency(text, "99%"),
            (long)Number(RequestsRegex(), text),
            (long)Number(Non2xxRegex(), text),
            SocketErrors(text));
    }

    /// <summary>A wrk Lua script that POSTs <paramref name="body"/> with the given headers.</summary>
    public static string WriteScript(string path, byte[] body, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var lua = new StringBuilder();
        lua.Append("wrk.method = \"POST\"\n");
        lua.Append("wrk.body = [==[").Append(Encoding.UTF8.GetString(body)).Append("]==]\n");
        lua.Append("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
        lua.Append("wrk.headers[\"Authorization\"] = \"Bearer " + Payloads.BenchKey + "\"\n");
        foreach (var (key, value) in headers)
        {
            lua.Append(CultureInfo.InvariantCulture, $"wrk.headers[\"{key}\"] = \"{value}\"\n");
        }

        File.WriteAllText(path, lua.ToString());
        return path;
    }

    private static double Latency(string text, string percentile)
    {
        var match = Regex.Match(text, @"^\s*" + Regex.Escape(percentile) + @"\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        if (!match.Success)
        {
            return double.NaN;
        }

        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch
        {
            "us" => value / 1000,
            "ms" => value,
            _ => value * 1000,
        };
    }

    private static double Number(Regex regex, string text)
    {
        var match = regex.Match(text);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static long SocketErrors(string text)
    {
        var match = SocketErrorsRegex().Match(text);
        if (!match.Success)
        {
            return 0;
        }

        long sum = 0;
        for (var i = 1; i <= 4; i++)
        {
            sum += long.Parse(match.Groups[i].Value, CultureInfo.InvariantCulture);
        }

        return sum;
    }

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")]
    private static partial Regex RpsRegex();

    [GeneratedRegex(@"(\d+) requests in")]
    private static partial Regex RequestsRegex();

    [GeneratedRegex(@"Non-2xx or 3xx responses:\s+(\d+)")]
    private static partial Regex Non2xxRegex();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex SocketErrorsRegex();
}
