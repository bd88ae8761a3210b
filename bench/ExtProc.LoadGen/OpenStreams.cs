using System.Diagnostics;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;

namespace ExtProc.LoadGen;

/// <summary>What holding many ext_proc streams open at once cost a processor.</summary>
internal sealed record OpenStreamsResult(string Target, int Streams, int Opened, double IdleRssMb, double OpenRssMb, double SecondsToOpen, int Completed);

/// <summary>
/// Holds <c>count</c> ext_proc streams open on one processor at once and reads its RSS: each HTTP request
/// sends its headers and the first half of a 10 KB chat body, then waits. With the BUFFERED request body
/// Envoy has already had the request-headers message answered, so every side stream is open, its context
/// allocated, waiting for the body — as with a slow uploader or a long agent turn. Then every request is let
/// finish and must complete.
/// </summary>
internal static class OpenStreams
{
    public static async Task<OpenStreamsResult> MeasureAsync(string target, Uri processor, int count, Func<double> rssMb)
    {
        var idle = rssMb();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var body = Payloads.ChatBody(10 * 1024);
        var half = body.Length / 2;
        var mix = new Mix("chat 10 KB", "POST", Payloads.ChatPath, body);
        var opened = 0;
        using var emulator = new global::ExtProc.EnvoyEmulator.EnvoyEmulator(Payloads.FilterConfig(processor), new ExtProcTarget.CannedProvider());
        emulator.OnLog = entry =>
        {
            if (entry.Kind == ExchangeLogKind.Received && entry.Response!.ResponseCase == ProcessingResponse.ResponseOneofCase.RequestHeaders)
            {
                Interlocked.Increment(ref opened);
            }
        };

        async IAsyncEnumerable<HttpFrame> SlowBody()
        {
            yield return new DataFrame(body.AsMemory(0, half), EndStream: false);
            await release.Task.ConfigureAwait(false);
            yield return new DataFrame(body.AsMemory(half), EndStream: true);
        }

        var clock = Stopwatch.StartNew();
        var streams = new List<Task<bool>>(count);
        for (var i = 0; i < count; i++)
        {
            var stream = emulator.Start(new DownstreamRequest { Headers = mix.Headers(), Body = SlowBody() });
            streams.Add(CompleteAsync(stream));
        }

        while (Volatile.Read(ref opened) < count && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(50).ConfigureAwait(false);
        }

        var secondsToOpen = clock.Elapsed.TotalSeconds;

        // Let the runtime settle (a GC may be pending), then keep the highest of a few samples.
        await Task.Delay(1000).ConfigureAwait(false);
        var open = 0.0;
        for (var i = 0; i < 5; i++)
        {
            open = Math.Max(open, rssMb());
            await Task.Delay(200).ConfigureAwait(false);
        }

        var reached = Volatile.Read(ref opened);
        release.SetResult();
        var results = await Task.WhenAll(streams).ConfigureAwait(false);
        return new OpenStreamsResult(target, count, reached, idle, open, secondsToOpen, results.Count(ok => ok));
    }

    private static async Task<bool> CompleteAsync(EmulatedStream stream)
    {
        var status = 0;
        await foreach (var frame in stream.Downstream.ReadAllAsync().ConfigureAwait(false))
        {
            if (frame is HeadersFrame headers && int.TryParse(headers.Headers.Get(":status"), out var s))
            {
                status = s;
            }
        }

        await stream.Completion.ConfigureAwait(false);
        return status == 200;
    }
}
