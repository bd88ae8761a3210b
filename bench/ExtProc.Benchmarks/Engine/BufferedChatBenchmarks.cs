using BenchmarkDotNet.Attributes;
using ExtProc.Pipeline;
using BodySendMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// (b) An OpenAI chat request with a BUFFERED body of ~200 B, ~10 KB or ~100 KB (large tool list).
/// "Request" is request headers + body (what the request waits for); "Exchange" adds the response
/// headers (response body mode NONE). Each op is one new stream; the baseline in each category is the
/// echo processor answering the same messages.
/// </summary>
public class BufferedChatBenchmarks
{
    private readonly NullStreamWriter<EnvoyExtProc.ProcessingResponse> _writer = new();
    private PipelineSnapshot _snapshot = null!;
    private EnvoyExtProc.ProcessingRequest _headers = null!;
    private EnvoyExtProc.ProcessingRequest _body = null!;
    private EnvoyExtProc.ProcessingRequest _responseHeaders = null!;

    [Params(200, 10_240, 102_400)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _snapshot = EngineSetup.DefaultSnapshot();
        var body = ExtProcMessages.ChatBody(BodySize);
        _headers = ExtProcMessages.RequestHeaders("POST", ExtProcMessages.ChatPath, "application/json", endOfStream: false,
            BodySendMode.Buffered, BodySendMode.None, contentLength: body.Length);
        _body = ExtProcMessages.RequestBody(body, endOfStream: true);
        _responseHeaders = ExtProcMessages.ResponseHeaders("application/json", contentLength: 1_024);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Request")]
    public async ValueTask Echo_Request()
    {
        var processor = new EchoProcessor(_writer);
        await processor.HandleAsync(_headers);
        await processor.HandleAsync(_body);
    }

    [Benchmark, BenchmarkCategory("Request")]
    public async ValueTask Engine_Request()
    {
        using var processor = EngineSetup.NewProcessor(_snapshot, _writer);
        await processor.HandleAsync(_headers);
        await processor.HandleAsync(_body);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Exchange")]
    public async ValueTask Echo_Exchange()
    {
        var processor = new EchoProcessor(_writer);
        await processor.HandleAsync(_headers);
        await processor.HandleAsync(_body);
        await processor.HandleAsync(_responseHeaders);
    }

    [Benchmark, BenchmarkCategory("Exchange")]
    public async ValueTask Engine_Exchange()
    {
        using var processor = EngineSetup.NewProcessor(_snapshot, _writer);
        await processor.HandleAsync(_headers);
        await processor.HandleAsync(_body);
        await processor.HandleAsync(_responseHeaders);
    }
}
