using BenchmarkDotNet.Attributes;
using ExtProc.Pipeline;
using BodySendMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// (d) An OpenAI chat request whose body comes FULL_DUPLEX_STREAMED in 4 KiB chunks. The engine holds
/// the header reply, gathers the body, runs the body phase at end of stream, then answers headers and
/// sends the body back as streamed mutations. Baseline: the echo processor (CONTINUE for every message;
/// not a correct duplex peer, since Envoy drops a drained chunk nobody sends back). "Echo_StreamBack"
/// is the least a correct duplex peer does: each chunk handed straight back, no copy.
/// "Engine_Ungoverned" is a POST the engine does not govern (an upload): in duplex mode a mode_override
/// cannot turn the body off, so every chunk is sent straight back as it arrives.
/// </summary>
public class DuplexRequestBenchmarks
{
    private const int ChunkSize = 4_096;
    private readonly NullStreamWriter<EnvoyExtProc.ProcessingResponse> _writer = new();
    private PipelineSnapshot _snapshot = null!;
    private EnvoyExtProc.ProcessingRequest[] _messages = null!;
    private EnvoyExtProc.ProcessingRequest[] _ungoverned = null!;

    [Params(10_240, 102_400)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _snapshot = EngineSetup.DefaultSnapshot();
        var body = ExtProcMessages.ChatBody(BodySize);
        var chunks = ExtProcMessages.RequestBodyChunks(body, ChunkSize);
        _messages = new EnvoyExtProc.ProcessingRequest[1 + chunks.Length];
        _messages[0] = ExtProcMessages.RequestHeaders("POST", ExtProcMessages.ChatPath, "application/json", endOfStream: false,
            BodySendMode.FullDuplexStreamed, BodySendMode.None, contentLength: body.Length);
        chunks.CopyTo(_messages, 1);
        _ungoverned = new EnvoyExtProc.ProcessingRequest[1 + chunks.Length];
        _ungoverned[0] = ExtProcMessages.RequestHeaders("POST", "/api/uploads", "application/octet-stream", endOfStream: false,
            BodySendMode.FullDuplexStreamed, BodySendMode.None, contentLength: body.Length);
        chunks.CopyTo(_ungoverned, 1);
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
    public async ValueTask Echo_StreamBack_Exchange()
    {
        var processor = new DuplexEchoProcessor(_writer);
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
    public async ValueTask Engine_Ungoverned_Exchange()
    {
        using var processor = EngineSetup.NewProcessor(_snapshot, _writer);
        foreach (var message in _ungoverned)
        {
            await processor.HandleAsync(message);
        }
    }
}
