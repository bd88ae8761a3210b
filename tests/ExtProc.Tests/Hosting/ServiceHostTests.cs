using System.Net;
using System.Net.Sockets;
using Envoy.Service.ExtProc.V3;
using ExtProc.Tests.Engine;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using static ExtProc.Tests.Engine.EngineTestKit;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;

namespace ExtProc.Tests.Hosting;

/// <summary>The whole process over real gRPC (HTTP/2 h2c on loopback) and its admin port.</summary>
public sealed class ServiceHostTests
{
    [Fact]
    public async Task GrpcHealth_OverallAndExtProcService_Serving()
    {
        await using var server = await ExtProcServer.StartAsync();
        var health = new Health.HealthClient(server.Channel);

        var overall = await health.CheckAsync(new HealthCheckRequest { Service = "" });
        var extProc = await health.CheckAsync(new HealthCheckRequest { Service = "envoy.service.ext_proc.v3.ExternalProcessor" });

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, overall.Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, extProc.Status);
    }

    [Fact]
    public async Task AdminPort_HealthzAndReadyz_200WhenLoaded()
    {
        await using var server = await ExtProcServer.StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await server.Admin.GetAsync(server.AdminUrl("/healthz"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.GetAsync(server.AdminUrl("/readyz"))).StatusCode);
    }

    [Fact]
    public async Task Process_BufferedBodyAboveGrpcDefaultLimit_ReachesTheEngineAndIsAnswered()
    {
        await using var server = await ExtProcServer.StartAsync();
        using var call = server.Client.Process();
        var body = Utf8("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 5 * 1024 * 1024) + "\"}]}");

        await call.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions", extra: ExtProcServer.AcmeAuthorization));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, call.ResponseStream.Current.ResponseCase);
        await call.RequestStream.WriteAsync(RequestBody(body, endOfStream: true));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, call.ResponseStream.Current.ResponseCase);
        await call.RequestStream.CompleteAsync();

        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Empty(server.Errors());
    }

    [Fact]
    public async Task Process_OutOfOrderMessage_StreamEndsFailedPreconditionNotOk()
    {
        await using var server = await ExtProcServer.StartAsync();
        using var call = server.Client.Process();

        await call.RequestStream.WriteAsync(RequestBody(Utf8("{}"), endOfStream: true));

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
    }

    [Fact]
    public async Task Process_EnvoyResetsMidStream_ServerEndsQuietly()
    {
        await using var server = await ExtProcServer.StartAsync();
        using var cancel = new CancellationTokenSource();
        using (var call = server.Client.Process(cancellationToken: cancel.Token))
        {
            await call.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions"));
            Assert.True(await call.ResponseStream.MoveNext());
            await cancel.CancelAsync();
        }

        // A second stream still works; the reset left nothing behind.
        using var next = server.Client.Process();
        await next.RequestStream.WriteAsync(RequestHeaders("/other", method: "GET", contentType: null));
        Assert.True(await next.ResponseStream.MoveNext());
        await next.RequestStream.CompleteAsync();
        Assert.False(await next.ResponseStream.MoveNext());
        Assert.True(server.Errors().Count == 0, string.Join("\n", server.Errors().Select(e => $"{e.Category}: {e.Message} {e.Exception}")));
    }

    [Fact]
    public async Task Process_ConcurrentStreams_EachSeesOnlyItsOwnState()
    {
        await using var server = await ExtProcServer.StartAsync();
        string[] paths = ["/v1/chat/completions", "/v1/messages", "/mcp", "/v1beta/models/g:generateContent", "/static/x"];
        string[] expected = ["openai.chat", "anthropic.messages", "mcp", "gemini", "other"];

        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
        {
            using var call = server.Client.Process();
            var path = paths[i % paths.Length];
            await call.RequestStream.WriteAsync(RequestHeaders(path, extra: ("x-request-id", $"r{i}")));
            Assert.True(await call.ResponseStream.MoveNext());
            var metadata = call.ResponseStream.Current.DynamicMetadata.Fields["extproc"].StructValue;
            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext())
            {
            }

            return (i, metadata.Fields["protocol"].StringValue);
        }));

        Assert.All(results, r => Assert.Equal(expected[r.i % expected.Length], r.Item2));
    }

    [Fact]
    public async Task Drain_StreamStillOpenAtDeadline_EndsUnavailableNeverOk()
    {
        var server = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Drain:Delay"] = "00:00:00.300",
            ["ExtProc:Drain:Timeout"] = "00:00:00.300",
        });
        try
        {
            using var call = server.Client.Process();
            await call.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions"));
            Assert.True(await call.ResponseStream.MoveNext());

            var stopping = server.App.StopAsync();
            await Task.Delay(100);
            var ready = await server.Admin.GetAsync(server.AdminUrl("/readyz"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);

            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.Unavailable, error.StatusCode);
            await stopping;
        }
        finally
        {
            server.Channel.Dispose();
            await server.App.DisposeAsync();
        }
    }

    [Fact]
    public async Task Drain_StreamFinishesWithinTimeout_CompletesNormally()
    {
        var server = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Drain:Delay"] = "00:00:00",
            ["ExtProc:Drain:Timeout"] = "00:00:05",
        });
        try
        {
            using var call = server.Client.Process();
            await call.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions", extra: ExtProcServer.AcmeAuthorization));
            Assert.True(await call.ResponseStream.MoveNext());

            var stopping = server.App.StopAsync();
            await call.RequestStream.WriteAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, call.ResponseStream.Current.ResponseCase);
            await call.RequestStream.CompleteAsync();
            Assert.False(await call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
            await stopping;
        }
        finally
        {
            server.Channel.Dispose();
            await server.App.DisposeAsync();
        }
    }

    [Fact]
    public async Task UnixSocket_Configured_ServesExtProcAndHealth()
    {
        var socket = Path.Combine(Path.GetTempPath(), $"extproc-{Guid.NewGuid():N}.sock");
        await using var server = await ExtProcServer.StartAsync(new Dictionary<string, string?> { ["ExtProc:Grpc:UnixSocketPath"] = socket });
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, token) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), token);
                return new NetworkStream(s, ownsSocket: true);
            },
        };
        using var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler });

        var status = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        using var call = new ExternalProcessor.ExternalProcessorClient(channel).Process();
        await call.RequestStream.WriteAsync(RequestHeaders("/other", method: "GET", contentType: null));
        Assert.True(await call.ResponseStream.MoveNext());

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status.Status);
        Assert.NotNull(call.ResponseStream.Current.ModeOverride);
        await call.RequestStream.CompleteAsync();
    }
}
