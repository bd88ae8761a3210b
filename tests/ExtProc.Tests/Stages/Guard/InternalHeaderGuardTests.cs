using Envoy.Service.ExtProc.V3;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Stages.Guard;

public sealed class InternalHeaderGuardTests
{
    [Theory]
    [InlineData("/static/app.js", "GET")]
    [InlineData("/v1/chat/completions", "POST")]
    public async Task RequestHeaders_ClientSendsReservedHeaders_AllRemovedBeforeAnyDecision(string path, string method)
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders(path, method: method,
            extra: [("x-extproc-cluster", "internal-admin"), ("x-extproc-tenant", "acme"), ("X-ExtProc-Decided", "1"), ("x-other", "kept")]));

        var reply = Assert.Single(writer.Responses);
        var removed = reply.RequestHeaders.Response.HeaderMutation.RemoveHeaders;
        Assert.Equal(["x-extproc-cluster", "x-extproc-tenant", "x-extproc-decided"], removed);
        Assert.True(reply.RequestHeaders.Response.ClearRouteCache); // the route was chosen with them present
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
    }

    [Fact]
    public async Task RequestHeaders_NoReservedHeaders_NoMutation()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));

        Assert.Null(Assert.Single(writer.Responses).RequestHeaders.Response);
    }
}
