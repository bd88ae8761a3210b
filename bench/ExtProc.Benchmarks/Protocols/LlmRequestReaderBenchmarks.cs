using System.Text.Json;
using BenchmarkDotNet.Attributes;
using ExtProc.Benchmarks.Engine;
using ExtProc.Protocols;

namespace ExtProc.Benchmarks.Protocols;

/// <summary>
/// Parsing an OpenAI chat body into what the gateway acts on: our strict single pass
/// (<see cref="LlmRequestReader"/>: duplicate keys, fold variants, UTF-8 and surrogates checked in every string,
/// tool definitions hashed) against the naive way, <see cref="JsonDocument"/> plus reading the same fields
/// (which checks none of that). Throughput = body size / mean.
/// </summary>
public class LlmRequestReaderBenchmarks
{
    private byte[] _body = null!;

    [Params(200, 10_240, 102_400)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup() => _body = ExtProcMessages.ChatBody(BodySize);

    [Benchmark(Baseline = true)]
    public int JsonDocument_Naive()
    {
        using var document = JsonDocument.Parse(_body);
        var root = document.RootElement;
        var count = root.GetProperty("model").GetString()!.Length;
        if (root.TryGetProperty("stream", out var stream) && stream.GetBoolean())
        {
            count++;
        }

        if (root.TryGetProperty("max_tokens", out var max))
        {
            count += max.GetInt32();
        }

        count += root.GetProperty("messages").GetArrayLength();
        if (root.TryGetProperty("tools", out var tools))
        {
            foreach (var tool in tools.EnumerateArray())
            {
                count += tool.GetProperty("function").GetProperty("name").GetString()!.Length;
            }
        }

        return count;
    }

    [Benchmark]
    public int Strict_SinglePass()
    {
        var summary = new RequestSummary();
        if (!LlmRequestReader.TryRead(_body, ProtocolKind.OpenAiChat, LlmRequestReader.DefaultMaxDepth, summary, out _))
        {
            throw new InvalidOperationException("benchmark body must be valid");
        }

        return summary.Model!.Length + summary.MessageCount + summary.Tools.Count;
    }
}
