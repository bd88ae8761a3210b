using ExtProc.Tests.Hosting;
using Grpc.Core;

namespace ExtProc.Tests.Wire;

/// <summary>
/// A client built only from Envoy's upstream definitions (messages encoded and decoded by protoc with the
/// npm copy of data-plane-api, carried as raw bytes) talks to the running ExtProc over real gRPC.
/// </summary>
public sealed class UpstreamClientTests
{
    private const string ServiceFile = "envoy/service/ext_proc/v3/external_processor.proto";
    private const string RequestType = "envoy.service.ext_proc.v3.ProcessingRequest";
    private const string ResponseType = "envoy.service.ext_proc.v3.ProcessingResponse";

    private static readonly Method<byte[], byte[]> Process = new(
        MethodType.DuplexStreaming,
        "envoy.service.ext_proc.v3.ExternalProcessor",
        "Process",
        Marshallers.Create(static b => b, static b => b),
        Marshallers.Create(static b => b, static b => b));

    [Fact]
    public async Task UpstreamEncodedStream_UngovernedRequest_RepliesDecodeUpstreamAsHeadersReplyWithModeOverride()
    {
        var reply = await ExchangeAsync("""
            request_headers {
              headers {
                headers { key: ":scheme" raw_value: "http" }
                headers { key: ":method" raw_value: "GET" }
                headers { key: ":authority" raw_value: "gw" }
                headers { key: ":path" raw_value: "/assets/logo.png" }
                headers { key: "x-extproc-cluster" raw_value: "spoofed" }
              }
              end_of_stream: true
            }
            metadata_context { }
            """);

        Assert.StartsWith("request_headers {", reply, StringComparison.Ordinal);
        Assert.Contains("remove_headers: \"x-extproc-cluster\"", reply, StringComparison.Ordinal);
        Assert.Contains("response_header_mode: SKIP", reply, StringComparison.Ordinal);
        Assert.Contains("string_value: \"other\"", reply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpstreamEncodedStream_WrongContentType_ImmediateResponse415DecodesUpstream()
    {
        var reply = await ExchangeAsync("""
            request_headers {
              headers {
                headers { key: ":method" raw_value: "POST" }
                headers { key: ":path" raw_value: "/v1/messages" }
                headers { key: "content-type" raw_value: "text/plain" }
              }
            }
            """);

        Assert.StartsWith("immediate_response {", reply, StringComparison.Ordinal);
        Assert.Contains("code: UnsupportedMediaType", reply, StringComparison.Ordinal);
        Assert.Contains("unsupported_media_type", reply, StringComparison.Ordinal);
    }

    private static async Task<string> ExchangeAsync(string requestText)
    {
        var request = Protoc.Encode(RequestType, UpstreamEnvoyApi.IncludeDirs, ServiceFile, requestText);
        await using var server = await ExtProcServer.StartAsync();
        using var call = server.Channel.CreateCallInvoker().AsyncDuplexStreamingCall(Process, null, new CallOptions());

        await call.RequestStream.WriteAsync(request);
        Assert.True(await call.ResponseStream.MoveNext());
        var reply = call.ResponseStream.Current;
        await call.RequestStream.CompleteAsync();

        return Protoc.Decode(ResponseType, UpstreamEnvoyApi.IncludeDirs, ServiceFile, reply);
    }
}
