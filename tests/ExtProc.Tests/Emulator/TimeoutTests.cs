using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Time.Testing;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 32-34: message timeouts (fake clock, advanced by the scripted processor).</summary>
public sealed class TimeoutTests
{
    private static readonly TimeSpan JustOver = TimeSpan.FromMilliseconds(201);

    /// <summary>Completes when the emulator logged an event containing <paramref name="note"/>.</summary>
    private static Func<Task> WaitForLog(EmulatorHarness h, string note)
    {
        var seen = new List<TaskCompletionSource>();
        var count = 0;
        h.Emulator.OnLog += entry =>
        {
            if (entry.Note?.Contains(note, StringComparison.Ordinal) == true)
            {
                lock (seen)
                {
                    count++;
                    foreach (var tcs in seen)
                    {
                        tcs.TrySetResult();
                    }
                }
            }
        };
        var consumed = 0;
        return () =>
        {
            lock (seen)
            {
                var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (count > consumed)
                {
                    tcs.TrySetResult();
                }
                else
                {
                    seen.Add(tcs);
                }

                consumed++;
                return tcs.Task.WaitAsync(TimeSpan.FromSeconds(3));
            }
        };
    }

    [Theory]
    [InlineData(false, true, 504)]
    [InlineData(true, true, 504)]
    [InlineData(false, false, 500)]
    public async Task MessageTimeout_NoReplyWithin200ms_GatewayTimeout(bool onResponsePath, bool timeoutErrorGuard, int expected)
    {
        var time = new FakeTimeProvider();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            var first = await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            if (onResponsePath)
            {
                await s.SendAsync(Replies.ContinueFor(first)!);
                await s.ExpectAsync(RequestOneofCase.ResponseHeaders);
            }

            time.Advance(TimeSpan.FromMilliseconds(199));
            time.Advance(TimeSpan.FromMilliseconds(2));
            await s.DrainAsync();
        }, c => c.Runtime.TimeoutError = timeoutErrorGuard, time: time);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(expected, result.Status);
        Assert.Equal(LocalReplyDetails.MessageTimeout, result.Details);
        Assert.Equal(1, result.Stats[ExtProcStats.MessageTimeouts]);
        Assert.Equal(onResponsePath, result.UpstreamContacted);
    }

    [Fact]
    public async Task MessageTimeout_FailOpen_ContinuesAndLateReplyIgnored()
    {
        var time = new FakeTimeProvider();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            var first = await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            time.Advance(JustOver);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set("x-late", "1")))));
            await s.DrainAsync();
        }, c => c.FailureModeAllow = true, time: time);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.False(result.UpstreamHeaders!.Contains("x-late"));
        Assert.Single(result.Sent);
        Assert.Equal(1, result.Stats[ExtProcStats.FailureModeAllowed]);
    }

    [Fact]
    public async Task OverrideMessageTimeout_ExtendsOnce_ServerIdles300ms_200()
    {
        var time = new FakeTimeProvider();
        Func<Task>? accepted = null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(new ProcessingResponse { OverrideMessageTimeout = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(400)) });
            await accepted!();
            time.Advance(TimeSpan.FromMilliseconds(300));
            await s.SendAsync(Replies.RequestHeaders());
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.MaxMessageTimeout = TimeSpan.FromMilliseconds(500), time: time);
        accepted = WaitForLog(h, "override_message_timeout accepted");
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal(1, result.Stats[ExtProcStats.OverrideMessageTimeoutReceived]);
        Assert.Equal(0, result.Stats[ExtProcStats.MessageTimeouts]);
    }

    [Fact]
    public async Task OverrideMessageTimeout_SecondOverrideIgnored_504()
    {
        var time = new FakeTimeProvider();
        Func<Task>? handled = null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(new ProcessingResponse { OverrideMessageTimeout = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(400)) });
            await handled!();
            time.Advance(TimeSpan.FromMilliseconds(300));
            await s.SendAsync(new ProcessingResponse { OverrideMessageTimeout = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(400)) });
            await handled!();
            time.Advance(TimeSpan.FromMilliseconds(101));
            await s.DrainAsync();
        }, c => c.MaxMessageTimeout = TimeSpan.FromMilliseconds(500), time: time);
        handled = WaitForLog(h, "override_message_timeout");
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(504, result.Status);
        Assert.Equal(1, result.Stats[ExtProcStats.OverrideMessageTimeoutIgnored]);
    }

    [Theory]
    [InlineData(0, 500)]
    [InlineData(600, 500)]
    [InlineData(300, 0)]
    [InlineData(-1, 500)]
    public async Task OverrideMessageTimeout_ZeroAboveMaxNoMaxOutOfRange_Ignored504(int overrideMs, int maxMs)
    {
        var time = new FakeTimeProvider();
        Func<Task>? ignored = null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            var duration = overrideMs >= 0
                ? Duration.FromTimeSpan(TimeSpan.FromMilliseconds(overrideMs))
                : new Duration { Seconds = 315_576_000_001 };
            await s.SendAsync(new ProcessingResponse { OverrideMessageTimeout = duration });
            await ignored!();
            time.Advance(JustOver);
            await s.DrainAsync();
        }, c => c.MaxMessageTimeout = TimeSpan.FromMilliseconds(maxMs), time: time);
        ignored = WaitForLog(h, "override_message_timeout ignored");
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(504, result.Status);
        Assert.Equal(1, result.Stats[ExtProcStats.OverrideMessageTimeoutIgnored]);
    }

    [Fact]
    public async Task OverrideMessageTimeout_OtherFieldsInSameMessageIgnored()
    {
        var time = new FakeTimeProvider();
        Func<Task>? accepted = null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            var both = Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set("x-ignored", "1"))));
            both.OverrideMessageTimeout = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(400));
            await s.SendAsync(both);
            await accepted!();
            await s.SendAsync(Replies.RequestHeaders());
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.MaxMessageTimeout = TimeSpan.FromMilliseconds(500), time: time);
        accepted = WaitForLog(h, "override_message_timeout accepted");
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.False(result.UpstreamHeaders!.Contains("x-ignored"));
    }

    [Fact]
    public async Task ClientDisconnectWhileWaiting_TimeoutWithFailOpen_ResetNoCrash()
    {
        var time = new FakeTimeProvider();
        var received = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            received.TrySetResult();
            await s.DrainAsync();
        }, c => c.FailureModeAllow = true, time: time);
        var stream = h.Emulator.Start(new DownstreamRequest { Headers = TestRequest.DefaultHeaders("GET", "/"), EndStreamOnHeaders = true });
        await received.Task.WaitAsync(TimeSpan.FromSeconds(3));
        stream.Abort();
        time.Advance(JustOver);
        var frames = await stream.Downstream.ReadAllAsync().ToListAsync();
        await stream.Completion.WaitAsync(TimeSpan.FromSeconds(3));
        await stream.SideStreamClosed.WaitAsync(TimeSpan.FromSeconds(3));

        Assert.IsType<ResetFrame>(Assert.Single(frames));
        Assert.Null(stream.UpstreamHeaders);
        await h.Processor.Sessions[0].ScriptDone.Task.WaitAsync(TimeSpan.FromSeconds(3));
        Assert.NotEqual(ClientEnd.StillOpen, h.Processor.Sessions[0].End);
    }
}
