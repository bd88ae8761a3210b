using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using ExtProc.Benchmarks.Engine;
using ExtProc.Protocols;
using ExtProc.Stages.Cache;

namespace ExtProc.Benchmarks.Cache;

/// <summary>
/// The response cache key of a chat body: our canonical form (parsed with Utf8JsonReader, members sorted, strings
/// unescaped, ignored fields left out) hashed with the tenant scope, against SHA-256 of the raw bytes (what a
/// key that ignored C4 would cost). Throughput = body size / mean.
/// </summary>
public class CacheKeyBenchmarks
{
    private static readonly CacheScope Scope = new("acme", "0a1b2c3d4e5f", new byte[32], "gpt-4o-mini", ProtocolKind.OpenAiChat, "/v1/chat/completions", null);
    private readonly byte[] _hash = new byte[32];
    private byte[] _body = null!;

    [Params(200, 10_240)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup() => _body = ExtProcMessages.ChatBody(BodySize);

    [Benchmark(Baseline = true)]
    public int RawSha256()
    {
        SHA256.HashData(_body, _hash);
        return _hash[0];
    }

    [Benchmark]
    public int CanonicalKey()
    {
        if (!CacheKeyBuilder.TryCompute(Scope, _body, out var key))
        {
            throw new InvalidOperationException("benchmark body must be valid");
        }

        return key.Hash[0];
    }
}
