using BenchmarkDotNet.Attributes;
using ExtProc.Pipeline;
using BodySendMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// A stream that is opened and answered after its first message (request headers): (a) an ungoverned
/// GET, whose one round trip is all it costs, and the request-headers phase of a governed chat POST.
/// Each op is one new stream; the echo processor handling the same message is the baseline.
/// </summary>
public class HeadersBenchmarks
{
    private readonly NullStreamWriter<EnvoyExtProc.ProcessingResponse> _writer = new();
    private PipelineSnapshot _snapshot = null!;
    private EnvoyExtProc.ProcessingRequest _get = null!;
    private EnvoyExtProc.ProcessingRequest _chatHeaders = null!;

    [GlobalSetup]
    public void Setup()
    {
        _snapshot = EngineSetup.DefaultSnapshot();
        _get = ExtProcMessages.RequestHeaders("GET", "/api/orders/42?expand=items", contentType: null, endOfStream: true,
            BodySendMode.Buffered, BodySendMode.None);
        _chatHeaders = ExtProcMessages.RequestHeaders("POST", ExtProcMessages.ChatPath, "application/json", endOfStream: false,
            BodySendMode.Buffered, BodySendMode.None, contentLength: 200);
    }

    [Benchmark(Baseline = true)]
    public ValueTask Echo_RequestHeaders() => new EchoProcessor(_writer).HandleAsync(_get);

    /// <summary>(a) GET on a path we do not govern: classified, answered with a mode_override that skips everything else.</summary>
    [Benchmark]
    public async ValueTask Engine_UngovernedGet()
    {
        using var processor = EngineSetup.NewProcessor(_snapshot, _writer);
        await processor.HandleAsync(_get);
    }

    /// <summary>The request-headers phase of (b): an OpenAI chat POST whose body is then awaited.</summary>
    [Benchmark]
    public async ValueTask Engine_ChatRequestHeaders()
    {
        using var processor = EngineSetup.NewProcessor(_snapshot, _writer);
        await processor.HandleAsync(_chatHeaders);
    }
}
