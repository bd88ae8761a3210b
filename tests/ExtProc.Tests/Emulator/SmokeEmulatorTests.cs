using ExtProc.EnvoyEmulator;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

public sealed class SmokeEmulatorTests
{
    [Fact]
    public async Task DefaultMode_ContinueAll_RequestAndResponseHeadersSentAnd200()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll);
        var result = await h.RunAsync(TestRequest.Get("/hello"));
        Assert.Equal(200, result.Status);
        Assert.Equal("upstream-body", result.BodyText);
        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.ResponseHeaders], result.Sent.Select(s => s.RequestCase));
        Assert.True(result.UpstreamContacted);
    }
}
