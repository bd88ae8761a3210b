using BenchmarkDotNet.Attributes;
using ExtProc.Pipeline;
using BodySendMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// (c) A streamed chat completion: request headers + ~200 B BUFFERED body, SSE response headers, then
/// N SSE events as a STREAMED response body, the last with end_of_stream. "Engine" is the shipped
/// pipeline (nothing reads the response body yet: one CONTINUE per chunk); "Engine_BodyRead" adds a
/// stage that asks for the response body, so every chunk is gathered into the pooled body buffer.
/// </summary>
public class StreamedResponseBenchmarks
{
    private readonly NullStreamWriter<EnvoyExtProc.ProcessingResponse> _writer = new();
    private PipelineSnapshot _snapshot = null!;
    private PipelineSnapshot _reading = null!;
    private EnvoyExtProc.ProcessingRequest[] _messages = null!;

    [Params(16, 256)]
    public int Chunks { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _snapshot = EngineSetup.DefaultSnapshot();
        _reading = EngineSetup.SnapshotWith(new ReadResponseBodyStage());
        var body = ExtProcMessages.ChatBody(200);
        _messages = new EnvoyExtProc.ProcessingRequest[3 + Chunks];
        _messages[0] = ExtProcMessages.RequestHeaders("POST", ExtProcMessages.ChatPath, "application/json", endOfStream: false,
            BodySendMode.Buffered, BodySendMode.Streamed, contentLength: body.Length);
        _messages[1] = ExtProcMessages.RequestBody(body, endOfStream: true);
        _messages[2] = ExtProcMessages.ResponseHeaders("text/event-stream", contentLength: null);
        for (var i = 0; i < Chunks; i++)
        {
            var last = i == Chunks - 1;
            _messages[3 + i] = ExtProcMessages.ResponseBody(ExtProcMessages.SseChunk(i, last), endOfStream: last);
        }
    }

    [Benchmark(Baseline = true)]
    public async ValueTask Echo_Exchange()
    {
        var processor = new EchoProcessor(_writer);
        foreach (var message in _messages)
        {
            await processor.HandleAsync(message);
        }
    }

    [Benchmark]
    public async ValueTask Engine_Exchange()
    {
        using var processor = EngineSetup.NewProcessor(_snapshot, _writer);
        foreach (var message in _messages)
        {
            await processor.HandleAsync(message);
        }
    }

    [Benchmark]
    public async ValueTask Engine_BodyRead_Exchange()
    {
        using var processor = EngineSetup.NewProcessor(_reading, _writer);
        foreach (var message in _messages)
        {
            await processor.HandleAsync(message);
        }
    }
}
