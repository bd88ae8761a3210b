using BenchmarkDotNet.Attributes;
using ExtProc.Envoy;
using ExtProc.Hosting;
using ExtProc.Pipeline;
using Microsoft.Extensions.Logging.Abstractions;
using BodySendMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// The real gRPC handler, <see cref="ExternalProcessorService.Process"/>, driven with in-memory streams
/// and a fake call context (no sockets, no HTTP/2): what a stream costs at the service level, with the
/// drain lease and the catch boundary. Baseline: the echo processor behind the same service base class.
/// The "Wire" categories also parse every request from its protobuf bytes and serialise every reply, as
/// grpc-dotnet does: closer to the real floor of a hop, and the engine's larger replies (dynamic
/// metadata, mode_override) are paid for.
/// </summary>
public class ServiceBenchmarks
{
    private readonly NullStreamWriter<EnvoyExtProc.ProcessingResponse> _writer = new();
    private readonly CancellationTokenSource _call = new();
    private DrainCoordinator _drain = null!;
    private ExternalProcessorService _service = null!;
    private EchoService _echo = null!;
    private BenchServerCallContext _context = null!;
    private ArrayStreamReader<EnvoyExtProc.ProcessingRequest> _get = null!;
    private ArrayStreamReader<EnvoyExtProc.ProcessingRequest> _chat = null!;
    private readonly WireStreamWriter<EnvoyExtProc.ProcessingResponse> _wireWriter = new();
    private WireStreamReader<EnvoyExtProc.ProcessingRequest> _wireGet = null!;
    private WireStreamReader<EnvoyExtProc.ProcessingRequest> _wireChat = null!;

    [GlobalSetup]
    public void Setup()
    {
        var snapshots = new PipelineSnapshotProvider();
        snapshots.Publish(EngineSetup.DefaultSnapshot());
        _drain = new DrainCoordinator();
        _service = new ExternalProcessorService(snapshots, _drain, TimeProvider.System, NullLogger<ExternalProcessorService>.Instance);
        _echo = new EchoService();

        // A real call's token can be cancelled (Envoy resets the stream), so the drain lease links to it.
        _context = new BenchServerCallContext(_call.Token);
        _get = new ArrayStreamReader<EnvoyExtProc.ProcessingRequest>(
        [
            ExtProcMessages.RequestHeaders("GET", "/api/orders/42?expand=items", contentType: null, endOfStream: true,
                BodySendMode.Buffered, BodySendMode.None),
        ]);
        var body = ExtProcMessages.ChatBody(10_240);
        EnvoyExtProc.ProcessingRequest[] chat =
        [
            ExtProcMessages.RequestHeaders("POST", ExtProcMessages.ChatPath, "application/json", endOfStream: false,
                BodySendMode.Buffered, BodySendMode.None, contentLength: body.Length),
            ExtProcMessages.RequestBody(body, endOfStream: true),
            ExtProcMessages.ResponseHeaders("application/json", contentLength: 1_024),
        ];
        _chat = new ArrayStreamReader<EnvoyExtProc.ProcessingRequest>(chat);
        _wireChat = new WireStreamReader<EnvoyExtProc.ProcessingRequest>(EnvoyExtProc.ProcessingRequest.Parser, chat);
        _wireGet = new WireStreamReader<EnvoyExtProc.ProcessingRequest>(EnvoyExtProc.ProcessingRequest.Parser,
        [
            ExtProcMessages.RequestHeaders("GET", "/api/orders/42?expand=items", contentType: null, endOfStream: true,
                BodySendMode.Buffered, BodySendMode.None),
        ]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _drain.Dispose();
        _call.Dispose();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("UngovernedGet")]
    public Task Echo_UngovernedGet()
    {
        _get.Reset();
        return _echo.Process(_get, _writer, _context);
    }

    [Benchmark, BenchmarkCategory("UngovernedGet")]
    public Task Service_UngovernedGet()
    {
        _get.Reset();
        return _service.Process(_get, _writer, _context);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Chat10KB")]
    public Task Echo_Chat10KB()
    {
        _chat.Reset();
        return _echo.Process(_chat, _writer, _context);
    }

    [Benchmark, BenchmarkCategory("Chat10KB")]
    public Task Service_Chat10KB()
    {
        _chat.Reset();
        return _service.Process(_chat, _writer, _context);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("UngovernedGetWire")]
    public Task Echo_UngovernedGetWire()
    {
        _wireGet.Reset();
        return _echo.Process(_wireGet, _wireWriter, _context);
    }

    [Benchmark, BenchmarkCategory("UngovernedGetWire")]
    public Task Service_UngovernedGetWire()
    {
        _wireGet.Reset();
        return _service.Process(_wireGet, _wireWriter, _context);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Chat10KBWire")]
    public Task Echo_Chat10KBWire()
    {
        _wireChat.Reset();
        return _echo.Process(_wireChat, _wireWriter, _context);
    }

    [Benchmark, BenchmarkCategory("Chat10KBWire")]
    public Task Service_Chat10KBWire()
    {
        _wireChat.Reset();
        return _service.Process(_wireChat, _wireWriter, _context);
    }
}
