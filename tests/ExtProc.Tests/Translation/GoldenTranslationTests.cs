using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ExtProc.Protocols;
using ExtProc.Translation;

namespace ExtProc.Tests.Translation;

/// <summary>
/// The golden conformance suite: every fixture under tests/testdata/translation/&lt;direction&gt;/ through
/// its translator, compared with the expected output; every stream also split at every byte and at random
/// multi-splits. Run alone with <c>--filter "FullyQualifiedName~GoldenTranslationTests"</c>.
/// </summary>
public sealed class GoldenTranslationTests
{
    public static TheoryData<string, string> RequestCases() => TranslationGolden.Cases("request");

    public static TheoryData<string, string> ResponseCases() => TranslationGolden.Cases("response");

    public static TheoryData<string, string> StreamCases() => TranslationGolden.Cases("stream");

    [Theory]
    [MemberData(nameof(RequestCases))]
    public void Request_MatchesGolden(string direction, string caseName)
    {
        var body = File.ReadAllBytes(Path.Combine(TranslationGolden.Root, direction, "request", caseName));
        var output = new ArrayBufferWriter<byte>();

        var result = TranslationGolden.Direction(direction).TranslateRequest(new ReadOnlySequence<byte>(body), TranslationGolden.Input(direction), output, out var state);

        var actual = result.Status switch
        {
            TranslationStatus.Failed => new JsonObject { ["$error"] = new JsonObject { ["status"] = result.Error!.Value.Error.Status, ["code"] = result.Error.Value.Error.Code } }.ToJsonString(),
            TranslationStatus.Unchanged => new JsonObject { ["$unchanged"] = true }.ToJsonString(),
            _ => Encoding.UTF8.GetString(output.WrittenSpan),
        };
        Assert.Equal(result.Status == TranslationStatus.Failed, state is null);
        TranslationGolden.AssertJson(TranslationGolden.ExpectedPath(direction, "request", caseName), actual);
    }

    [Theory]
    [MemberData(nameof(ResponseCases))]
    public void Response_MatchesGolden(string direction, string caseName)
    {
        var body = File.ReadAllBytes(Path.Combine(TranslationGolden.Root, direction, "response", caseName));
        var status = TranslationGolden.StatusOf(caseName);
        var output = new ArrayBufferWriter<byte>();

        var result = TranslationGolden.Direction(direction).TranslateResponse(new ReadOnlySequence<byte>(body), status, TranslationGolden.State(direction, stream: false), output);

        Assert.NotEqual(TranslationStatus.Failed, result.Status);
        var written = result.Status == TranslationStatus.Unchanged ? body : output.WrittenSpan.ToArray();
        var actual = new JsonObject
        {
            ["status"] = result.HttpStatus,
            ["unchanged"] = result.Status == TranslationStatus.Unchanged,
            ["body"] = JsonNode.Parse(written), // always well-formed JSON, even for malformed upstream bodies
        };
        TranslationGolden.AssertJson(TranslationGolden.ExpectedPath(direction, "response", caseName), actual.ToJsonString());
    }

    [Theory]
    [MemberData(nameof(StreamCases))]
    public void Stream_MatchesGolden(string direction, string caseName)
    {
        var actual = Run(direction, caseName, []);

        TranslationGolden.AssertBytes(TranslationGolden.ExpectedPath(direction, "stream", caseName), actual);
        StreamInvariants.Check(TranslationGolden.Direction(direction).Client, actual);
    }

    [Theory]
    [MemberData(nameof(StreamCases))]
    public void Stream_SplitAtEveryByte_SameOutput(string direction, string caseName)
    {
        var whole = Run(direction, caseName, []);
        var length = File.ReadAllBytes(Path.Combine(TranslationGolden.Root, direction, "stream", caseName)).Length;

        for (var cut = 0; cut <= length; cut++)
        {
            Assert.Equal(whole, Run(direction, caseName, [cut]));
        }

        var random = new Random(caseName.Length * 7919);
        for (var round = 0; round < 25; round++)
        {
            var cuts = new SortedSet<int>();
            var count = random.Next(2, 12);
            for (var i = 0; i < count; i++)
            {
                cuts.Add(random.Next(0, length + 1));
            }

            Assert.Equal(whole, Run(direction, caseName, [.. cuts]));
        }
    }

    private static byte[] Run(string direction, string caseName, IReadOnlyList<int> cuts)
    {
        var body = File.ReadAllBytes(Path.Combine(TranslationGolden.Root, direction, "stream", caseName));
        return TranslationGolden.RunStream(TranslationGolden.Direction(direction), TranslationGolden.State(direction, stream: true), body, cuts);
    }
}

/// <summary>The rules every translated stream keeps whatever the fixture (providers.md §0 rules 2–4, 18–19).</summary>
internal static class StreamInvariants
{
    public static void Check(ProtocolKind client, byte[] stream)
    {
        var frames = Encoding.UTF8.GetString(stream).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        if (client == ProtocolKind.AnthropicMessages)
        {
            CheckAnthropic(frames);
        }
        else
        {
            CheckOpenAI(frames);
        }
    }

    private static void CheckOpenAI(string[] frames)
    {
        var done = 0;
        var errors = 0;
        var toolIndexes = new List<int>();
        string? finish = null;
        for (var i = 0; i < frames.Length; i++)
        {
            var frame = frames[i];
            if (frame.StartsWith(':'))
            {
                continue; // keep-alive comment
            }

            Assert.StartsWith("data: ", frame);
            var data = frame["data: ".Length..];
            if (data == "[DONE]")
            {
                done++;
                Assert.Equal(frames.Length - 1, i); // [DONE] is the very last frame
                continue;
            }

            using var doc = JsonDocument.Parse(data);
            if (doc.RootElement.TryGetProperty("error", out _))
            {
                errors++;
                Assert.Equal(frames.Length - 1, i); // an error ends the stream
                continue;
            }

            foreach (var choice in doc.RootElement.GetProperty("choices").EnumerateArray())
            {
                if (choice.TryGetProperty("finish_reason", out var reason) && reason.ValueKind == JsonValueKind.String)
                {
                    Assert.Null(finish);
                    finish = reason.GetString();
                    Assert.Contains(finish, new[] { "stop", "length", "tool_calls", "content_filter" });
                }

                if (!choice.TryGetProperty("delta", out var delta) || !delta.TryGetProperty("tool_calls", out var calls))
                {
                    continue;
                }

                foreach (var call in calls.EnumerateArray())
                {
                    var index = call.GetProperty("index").GetInt32();
                    if (!toolIndexes.Contains(index))
                    {
                        Assert.Equal(toolIndexes.Count, index); // one counter per response: 0, 1, 2, …
                        Assert.True(call.TryGetProperty("id", out _), "The first delta of a tool call carries its id.");
                        Assert.True(call.GetProperty("function").TryGetProperty("name", out _), "The first delta of a tool call carries its name.");
                        toolIndexes.Add(index);
                    }
                    else
                    {
                        Assert.False(call.TryGetProperty("id", out _), "Later deltas carry only arguments.");
                    }
                }
            }
        }

        Assert.True(done + errors == 1, "A stream ends with exactly one [DONE] or one error.");
        if (done == 1)
        {
            Assert.NotNull(finish);
            if (toolIndexes.Count > 0 && finish != "length")
            {
                Assert.Equal("tool_calls", finish);
            }
        }
    }

    private static void CheckAnthropic(string[] frames)
    {
        var stops = 0;
        var errors = 0;
        foreach (var frame in frames)
        {
            var lines = frame.Split('\n');
            Assert.Equal(2, lines.Length);
            Assert.StartsWith("event: ", lines[0]);
            Assert.StartsWith("data: ", lines[1]);
            using var doc = JsonDocument.Parse(lines[1]["data: ".Length..]);
            Assert.Equal(lines[0]["event: ".Length..], doc.RootElement.GetProperty("type").GetString());
            stops += lines[0] == "event: message_stop" ? 1 : 0;
            errors += lines[0] == "event: error" ? 1 : 0;
        }

        Assert.True(stops + errors == 1, "A stream ends with exactly one message_stop or one error.");
    }
}
