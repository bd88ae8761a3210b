using System.Text;
using BenchmarkDotNet.Attributes;
using ExtProc.Stages.Identify;

namespace ExtProc.Benchmarks.Stages.Identify;

/// <summary>
/// <see cref="ProtocolClassifier.Classify"/> on the paths it sees per request (returned as int: the enum is internal). Normalisation runs on the
/// stack: every case must allocate 0 B (allocation-budget.json holds it to that).
/// </summary>
public class ProtocolClassifierBenchmarks
{
    private ProtocolClassifier _classifier = null!;
    private byte[] _short = null!;
    private byte[] _query = null!;
    private byte[] _long = null!;
    private byte[] _encoded = null!;
    private byte[] _ungoverned = null!;
    private byte[] _oversized = null!;

    [GlobalSetup]
    public void Setup()
    {
        _classifier = new ProtocolClassifier(["/mcp"]);
        _short = Encoding.ASCII.GetBytes("/v1/chat/completions");
        _query = Encoding.ASCII.GetBytes("/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21");
        _long = Encoding.ASCII.GetBytes(
            "/v1beta/projects/agent-platform-prod-000123/locations/europe-west4/publishers/google/models/gemini-2.5-flash-preview-05-20:streamGenerateContent?alt=sse&key=AIzaSyBenchmarkKey0000000000000000000000&trace=0af7651916cd43dd8448eb211c80319c");
        _encoded = Encoding.ASCII.GetBytes("/v1/%63hat/%43ompletions%2F./../completions");
        _ungoverned = Encoding.ASCII.GetBytes("/api/orders/42?expand=items");

        // Beyond the stack scratch (1 KiB): the pooled path, still 0 B once the pool holds a buffer.
        _oversized = Encoding.ASCII.GetBytes("/v1/" + new string('a', 2_000) + "/chat/completions");
    }

    [Benchmark(Baseline = true)]
    public int Short() => (int)_classifier.Classify(_short);

    [Benchmark]
    public int WithQuery() => (int)_classifier.Classify(_query);

    [Benchmark]
    public int Long() => (int)_classifier.Classify(_long);

    [Benchmark]
    public int PercentEncoded() => (int)_classifier.Classify(_encoded);

    [Benchmark]
    public int Ungoverned() => (int)_classifier.Classify(_ungoverned);

    [Benchmark]
    public int Oversized() => (int)_classifier.Classify(_oversized);
}
