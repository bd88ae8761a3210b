namespace ExtProc.Tests;

public sealed class SmokeTests
{
    [Fact]
    public void ProtosCompile_ProcessingRequestHasProtocolConfig()
    {
        var request = new Envoy.Service.ExtProc.V3.ProcessingRequest { ProtocolConfig = new() };
        Assert.NotNull(request.ProtocolConfig);
    }
}
