using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ExtProc.Protocols;
using ExtProc.Translation;

namespace ExtProc.Tests.Translation;

/// <summary>
/// The golden conformance suite's files (tests/testdata/translation/&lt;direction&gt;/): request fixtures
/// and upstream response fixtures (buffered .json, streamed .sse), each beside its expected output.
/// Set TRANSLATION_GOLDEN_UPDATE=1 to (re)write missing expected files for review; never under CI.
/// </summary>
internal static partial class TranslationGolden
{
    public static readonly string Root = FindRoot();

    public static bool Update => Environment.GetEnvironmentVariable("TRANSLATION_GOLDEN_UPDATE") == "1"
        && Environment.GetEnvironmentVariable("CI") != "true";

    public static TranslationDirection Direction(string name) => name switch
    {
        "openai-to-anthropic" => Get(ProtocolKind.OpenAiChat, ProtocolKind.AnthropicMessages, UpstreamDialect.Standard),
        "anthropic-to-openai" => Get(ProtocolKind.AnthropicMessages, ProtocolKind.OpenAiChat, UpstreamDialect.Standard),
        "anthropic-to-mistral" => Get(ProtocolKind.AnthropicMessages, ProtocolKind.OpenAiChat, UpstreamDialect.Mistral),
        "anthropic-to-deepseek" => Get(ProtocolKind.AnthropicMessages, ProtocolKind.OpenAiChat, UpstreamDialect.DeepSeek),
        "openai-to-gemini" or "openai-to-gemini-legacy" => Get(ProtocolKind.OpenAiChat, ProtocolKind.Gemini, UpstreamDialect.Standard),
        "openai-to-deepseek" => Get(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.DeepSeek),
        "openai-to-mistral" => Get(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Mistral),
        "openai-to-qwen" => Get(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Qwen),
        "openai-to-azure" => Get(ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat, UpstreamDialect.Azure),
        _ => throw new ArgumentException(name),
    };

    public static IEnumerable<string> Directions() =>
        Directory.GetDirectories(Root).Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    /// <summary>(direction, kind, case) for every fixture of a kind: request, response or stream.</summary>
    public static TheoryData<string, string> Cases(string kind)
    {
        var data = new TheoryData<string, string>();
        foreach (var direction in Directions())
        {
            var folder = Path.Combine(Root, direction, kind);
            if (!Directory.Exists(folder))
            {
                continue;
            }

            foreach (var file in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(file);
                if (!name.Contains(".expected", StringComparison.Ordinal))
                {
                    data.Add(direction, name);
                }
            }
        }

        return data;
    }

    public static RequestTranslationInput Input(string direction)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, direction, "input.json")));
        var root = doc.RootElement;
        return new RequestTranslationInput(
            root.GetProperty("upstreamModel").GetString(),
            root.GetProperty("requestId").GetString()!,
            root.GetProperty("created").GetInt64(),
            root.TryGetProperty("defaultMaxTokens", out var max) ? max.GetInt32() : 4096);
    }

    /// <summary>The state a response fixture is translated with: that of the direction's state-request.json.</summary>
    public static TranslationState State(string direction, bool stream)
    {
        var file = Path.Combine(Root, direction, stream ? "state-request-stream.json" : "state-request.json");
        var body = File.ReadAllBytes(file);
        var result = Direction(direction).TranslateRequest(new ReadOnlySequence<byte>(body), Input(direction), new ArrayBufferWriter<byte>(), out var state);
        Assert.NotEqual(TranslationStatus.Failed, result.Status);
        return state!;
    }

    public static int StatusOf(string caseName) =>
        StatusPattern().Match(caseName) is { Success: true } match ? int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 200;

    public static string ExpectedPath(string direction, string kind, string caseName)
    {
        var extension = Path.GetExtension(caseName);
        return Path.Combine(Root, direction, kind, Path.GetFileNameWithoutExtension(caseName) + ".expected" + extension);
    }

    /// <summary>Compares JSON semantically (key order is not the contract); writes the expected file in update mode.</summary>
    public static void AssertJson(string expectedPath, string actualJson)
    {
        if (!File.Exists(expectedPath))
        {
            Assert.True(Update, $"Missing golden file {expectedPath} (run with TRANSLATION_GOLDEN_UPDATE=1 and review it).");
            File.WriteAllText(expectedPath, JsonNode.Parse(actualJson)!.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
            return;
        }

        var expected = JsonNode.Parse(File.ReadAllText(expectedPath));
        var actual = JsonNode.Parse(actualJson);
        Assert.True(JsonNode.DeepEquals(expected, actual), $"{Path.GetFileName(expectedPath)}\nexpected: {expected!.ToJsonString()}\nactual:   {actual!.ToJsonString()}");
    }

    /// <summary>Streams are compared byte for byte (the SSE framing is the contract).</summary>
    public static void AssertBytes(string expectedPath, byte[] actual)
    {
        if (!File.Exists(expectedPath))
        {
            Assert.True(Update, $"Missing golden file {expectedPath} (run with TRANSLATION_GOLDEN_UPDATE=1 and review it).");
            File.WriteAllBytes(expectedPath, actual);
            return;
        }

        Assert.Equal(File.ReadAllText(expectedPath), Encoding.UTF8.GetString(actual));
    }

    /// <summary>Runs a stream through a fresh translator, cut into the given chunks.</summary>
    public static byte[] RunStream(TranslationDirection direction, TranslationState state, byte[] body, IReadOnlyList<int> cuts)
    {
        var output = new ArrayBufferWriter<byte>();
        using var translator = direction.CreateStreamTranslator(state);
        var start = 0;
        foreach (var cut in cuts)
        {
            translator.Process(new ReadOnlySequence<byte>(body, start, cut - start), endOfStream: false, output);
            start = cut;
        }

        translator.Process(new ReadOnlySequence<byte>(body, start, body.Length - start), endOfStream: true, output);
        return output.WrittenSpan.ToArray();
    }

    private static TranslationDirection Get(ProtocolKind client, ProtocolKind upstream, UpstreamDialect dialect)
    {
        Assert.True(Translators.TryGet(client, upstream, dialect, out var direction), $"No translator {client} → {upstream} ({dialect}).");
        return direction!;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "testdata", "translation");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/testdata/translation not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^status-(\d{3})")]
    private static partial Regex StatusPattern();
}
