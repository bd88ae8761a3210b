using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using ExtProc.Protocols;
using ExtProc.Translation;

namespace ExtProc.Benchmarks.Translation;

/// <summary>
/// Buffered translation per direction, request and response, for ~10 KB and ~100 KB bodies, against a
/// <see cref="JsonNode"/> baseline in the same run: parse the body into a DOM, change one field, write it
/// back (the least any DOM-based translator does, so the ratio is conservative). Throughput = size / mean.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class TranslationBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(256 * 1024);
    private TranslationDirection _direction = null!;
    private TranslationState _state = null!;
    private byte[] _request = null!;
    private byte[] _response = null!;

    [Params("OpenAIToAnthropic", "AnthropicToOpenAI", "OpenAIToGemini", "OpenAIToMistral")]
    public string Direction { get; set; } = "OpenAIToAnthropic";

    [Params(10_240, 102_400)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (_direction, _request, _response) = Direction switch
        {
            "OpenAIToAnthropic" => (Get(ProtocolKind.OpenAiChat, ProtocolKind.AnthropicMessages, UpstreamDialect.Standard), TranslationBodies.OpenAIRequest(BodySize), TranslationBodies.AnthropicResponse(BodySize)),
            "AnthropicToOpenAI" => (Get(ProtocolKind.AnthropicMessages, ProtocolKind.OpenAiChat, UpstreamDialect.Standard), TranslationBodies.AnthropicRequest(BodySize), TranslationBodies.OpenAIResponse(BodySize)),
            "OpenAIToGemini" => (Get(ProtocolKind.OpenAiChat, ProtocolKind.Gemini, UpstreamDialect.Standard), TranslationBodies.OpenAIRequest(BodySize), TranslationBodies.GeminiResponse(BodySize)),
            _ => (Get(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Mistral), TranslationBodies.OpenAIRequest(BodySize), TranslationBodies.OpenAIResponse(BodySize, finish: "model_length")),
        };
        _state = TranslationSetup.State(_direction, _request);
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("Request")]
    public int JsonNode_Request() => JsonNodeBaseline.Rewrite(_request, _output, "model", "upstream-model");

    [Benchmark]
    [BenchmarkCategory("Request")]
    public int Translator_Request()
    {
        _output.ResetWrittenCount();
        var result = _direction.TranslateRequest(new ReadOnlySequence<byte>(_request), TranslationSetup.Input, _output, out _);
        return result.Status == TranslationStatus.Failed ? throw new InvalidOperationException("benchmark body must translate") : _output.WrittenCount;
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("Response")]
    public int JsonNode_Response() => JsonNodeBaseline.Rewrite(_response, _output, "id", "chatcmpl-1");

    [Benchmark]
    [BenchmarkCategory("Response")]
    public int Translator_Response()
    {
        _output.ResetWrittenCount();
        _direction.TranslateResponse(new ReadOnlySequence<byte>(_response), 200, _state, _output);
        return _output.WrittenCount;
    }

    private static TranslationDirection Get(ProtocolKind client, ProtocolKind upstream, UpstreamDialect dialect) =>
        Translators.TryGet(client, upstream, dialect, out var direction) ? direction! : throw new InvalidOperationException("no translator");
}

/// <summary>
/// A 100-event SSE response per direction, delivered in 4 KiB body chunks as Envoy's STREAMED mode
/// would, against a <see cref="JsonNode"/> baseline that parses and re-writes each event's data.
/// </summary>
public class TranslationStreamBenchmarks
{
    private const int ChunkSize = 4096;
    private readonly ArrayBufferWriter<byte> _output = new(256 * 1024);
    private TranslationDirection _direction = null!;
    private TranslationState _state = null!;
    private byte[] _stream = null!;

    [Params("OpenAIToAnthropic", "AnthropicToOpenAI", "OpenAIToGemini", "OpenAIToMistral")]
    public string Direction { get; set; } = "OpenAIToAnthropic";

    [GlobalSetup]
    public void Setup()
    {
        byte[] request;
        (_direction, request, _stream) = Direction switch
        {
            "OpenAIToAnthropic" => (Get(ProtocolKind.OpenAiChat, ProtocolKind.AnthropicMessages, UpstreamDialect.Standard), TranslationBodies.OpenAIRequest(1000), TranslationBodies.AnthropicStream()),
            "AnthropicToOpenAI" => (Get(ProtocolKind.AnthropicMessages, ProtocolKind.OpenAiChat, UpstreamDialect.Standard), TranslationBodies.AnthropicRequest(1000), TranslationBodies.OpenAIStream()),
            "OpenAIToGemini" => (Get(ProtocolKind.OpenAiChat, ProtocolKind.Gemini, UpstreamDialect.Standard), TranslationBodies.OpenAIRequest(1000), TranslationBodies.GeminiStream()),
            _ => (Get(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Mistral), TranslationBodies.OpenAIRequest(1000), TranslationBodies.OpenAIStream()),
        };
        _state = TranslationSetup.State(_direction, request);
    }

    [Benchmark(Baseline = true)]
    public int JsonNode_Stream()
    {
        _output.ResetWrittenCount();
        var count = 0;
        foreach (var line in _stream.AsSpan().Split("\n"u8))
        {
            var text = _stream.AsSpan()[line];
            if (text.StartsWith("data: {"u8))
            {
                count += JsonNodeBaseline.Append(text[6..], _output);
            }
        }

        return count;
    }

    [Benchmark]
    public int Translator_Stream()
    {
        _output.ResetWrittenCount();
        using var translator = _direction.CreateStreamTranslator(_state);
        for (var offset = 0; offset < _stream.Length; offset += ChunkSize)
        {
            var length = Math.Min(ChunkSize, _stream.Length - offset);
            translator.Process(new ReadOnlySequence<byte>(_stream, offset, length), offset + length == _stream.Length, _output);
        }

        return _output.WrittenCount;
    }

    private static TranslationDirection Get(ProtocolKind client, ProtocolKind upstream, UpstreamDialect dialect) =>
        Translators.TryGet(client, upstream, dialect, out var direction) ? direction! : throw new InvalidOperationException("no translator");
}

internal static class TranslationSetup
{
    public static readonly RequestTranslationInput Input = new("upstream-model", "req-bench", 1700000000);

    public static TranslationState State(TranslationDirection direction, byte[] request)
    {
        direction.TranslateRequest(new ReadOnlySequence<byte>(request), Input, new ArrayBufferWriter<byte>(), out var state);
        return state ?? throw new InvalidOperationException("benchmark request must translate");
    }
}

internal static class JsonNodeBaseline
{
    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    public static int Rewrite(byte[] body, ArrayBufferWriter<byte> output, string field, string value)
    {
        output.ResetWrittenCount();
        var node = JsonNode.Parse(body)!;
        node[field] = value;
        var writer = t_writer ??= new Utf8JsonWriter(output);
        writer.Reset(output);
        node.WriteTo(writer);
        writer.Flush();
        return output.WrittenCount;
    }

    public static int Append(ReadOnlySpan<byte> json, ArrayBufferWriter<byte> output)
    {
        var node = JsonNode.Parse(json)!;
        var writer = t_writer ??= new Utf8JsonWriter(output);
        writer.Reset(output);
        node.WriteTo(writer);
        writer.Flush();
        return 1;
    }
}
