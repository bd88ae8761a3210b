using System.Globalization;
using Envoy.Service.ExtProc.V3;
using ExtProc.Envoy;
using Grpc.Core;
using static ExtProc.Tests.Engine.EngineTestKit;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;

namespace ExtProc.Tests.Engine;

/// <summary>
/// Random ProcessingRequest sequences against the engine (faults.md P3, P6, P7): mostly in Envoy's order
/// with random modes, paths, bodies and chunking, sometimes corrupted. Every stream must either answer
/// each message as Envoy expects or end with a non-OK status; nothing else may escape.
/// EXTPROC_FUZZ_STREAMS raises the count (the nightly figure is 10^6).
/// </summary>
public sealed class StreamFuzzTests
{
    private static readonly string[] Paths =
        ["/v1/chat/completions", "/v1/messages", "/v1beta/models/g:streamGenerateContent", "/mcp", "/mcp/x", "/", "/static/a.js", "/V1/CHAT/COMPLETIONS?x=1"];

    private static readonly string?[] ContentTypes = ["application/json", "application/json; charset=utf-8", "text/plain", null];

    private static readonly BodySendMode[] Modes =
        [BodySendMode.None, BodySendMode.Streamed, BodySendMode.Buffered, BodySendMode.BufferedPartial, BodySendMode.FullDuplexStreamed];

    [Fact]
    public async Task RandomStreams_EveryMessageAnsweredInOrderOrStreamEndsNonOk()
    {
        var streams = int.TryParse(Environment.GetEnvironmentVariable("EXTPROC_FUZZ_STREAMS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 5_000;
        var snapshot = DefaultSnapshot(o => o.Grpc.MaxBodyBytes = 4096);
        var failures = new List<string>();
        var violations = 0;
        for (var seed = 0; seed < streams && failures.Count < 5; seed++)
        {
            var random = new Random(seed);
            var (processor, writer) = Processor(snapshot);
            var (sequence, duplex) = Generate(random);
            try
            {
                foreach (var message in sequence)
                {
                    var before = writer.Responses.Count;
                    var wasCompleted = processor.Completed;
                    await processor.HandleAsync(message);
                    var problem = Check(message, duplex, writer.Responses, before, wasCompleted, processor.Completed);
                    if (problem is not null)
                    {
                        failures.Add($"seed {seed}: {problem}");
                        break;
                    }
                }
            }
            catch (ProtocolViolationException ex) when (ex.Status is StatusCode.FailedPrecondition or StatusCode.InvalidArgument)
            {
                violations++;
            }
            catch (Exception ex)
            {
                failures.Add($"seed {seed}: {ex.GetType().Name}: {ex.Message}");
            }
            finally
            {
                processor.Dispose();
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.InRange(violations, 1, streams - 1); // corruption is exercised, but most streams run deep
    }

    private static string? Check(ProcessingRequest message, bool duplex, List<ProcessingResponse> responses, int before, bool wasCompleted, bool completed)
    {
        var written = responses.Skip(before).Where(r => r.OverrideMessageTimeout is null).ToList();
        if (wasCompleted)
        {
            return written.Count == 0 ? null : "a reply after the immediate response";
        }

        if (written.Count == 0)
        {
            // Only a duplex body (or the headers reply waiting for it) may stay unanswered for now.
            return duplex && !completed && message.RequestCase is not (ProcessingRequest.RequestOneofCase.RequestTrailers
                or ProcessingRequest.RequestOneofCase.ResponseTrailers)
                ? null
                : $"no reply to {message.RequestCase}";
        }

        if (written.Any(r => r.ResponseCase == ProcessingResponse.ResponseOneofCase.None))
        {
            return "a reply with no oneof";
        }

        var immediate = written.FindIndex(r => r.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse);
        if (immediate >= 0 && (immediate != written.Count - 1 || !completed || (int)written[immediate].ImmediateResponse.Status.Code < 200))
        {
            return "an immediate response that did not end the exchange";
        }

        if (!duplex)
        {
            var only = Assert.Single(written);
            return only.ResponseCase == Expected(message.RequestCase) || immediate == 0
                ? null
                : $"{message.RequestCase} answered with {only.ResponseCase}";
        }

        // Duplex: a deferred headers reply is flushed with the body that completes it, so one message may
        // be answered by headers, body chunks and its own reply, in that order.
        var direction = IsRequestSide(message.RequestCase);
        foreach (var reply in written)
        {
            if (reply.ResponseCase != ProcessingResponse.ResponseOneofCase.ImmediateResponse && IsRequestSide(reply.ResponseCase) != direction)
            {
                return $"{message.RequestCase} answered on the other direction with {reply.ResponseCase}";
            }
        }

        return null;
    }

    private static bool IsRequestSide(ProcessingRequest.RequestOneofCase phase) => phase is ProcessingRequest.RequestOneofCase.RequestHeaders
        or ProcessingRequest.RequestOneofCase.RequestBody or ProcessingRequest.RequestOneofCase.RequestTrailers;

    private static bool IsRequestSide(ProcessingResponse.ResponseOneofCase reply) => reply is ProcessingResponse.ResponseOneofCase.RequestHeaders
        or ProcessingResponse.ResponseOneofCase.RequestBody or ProcessingResponse.ResponseOneofCase.RequestTrailers;

    private static ProcessingResponse.ResponseOneofCase Expected(ProcessingRequest.RequestOneofCase request) => request switch
    {
        ProcessingRequest.RequestOneofCase.RequestHeaders => ProcessingResponse.ResponseOneofCase.RequestHeaders,
        ProcessingRequest.RequestOneofCase.ResponseHeaders => ProcessingResponse.ResponseOneofCase.ResponseHeaders,
        ProcessingRequest.RequestOneofCase.RequestBody => ProcessingResponse.ResponseOneofCase.RequestBody,
        ProcessingRequest.RequestOneofCase.ResponseBody => ProcessingResponse.ResponseOneofCase.ResponseBody,
        ProcessingRequest.RequestOneofCase.RequestTrailers => ProcessingResponse.ResponseOneofCase.RequestTrailers,
        ProcessingRequest.RequestOneofCase.ResponseTrailers => ProcessingResponse.ResponseOneofCase.ResponseTrailers,
        _ => ProcessingResponse.ResponseOneofCase.None,
    };

    private static (List<ProcessingRequest> Sequence, bool Duplex) Generate(Random random)
    {
        var requestMode = Modes[random.Next(Modes.Length)];
        var responseMode = Modes[random.Next(Modes.Length)];
        var path = Paths[random.Next(Paths.Length)];
        var method = random.Next(4) == 0 ? "GET" : "POST";
        var requestBody = RandomBody(random);
        var requestTrailers = random.Next(6) == 0;
        var headersEnd = requestBody.Length == 0 && !requestTrailers && random.Next(2) == 0;
        var sequence = new List<ProcessingRequest>
        {
            RequestHeaders(path, method, ContentTypes[random.Next(ContentTypes.Length)], headersEnd, requestMode, responseMode),
        };
        if (!headersEnd)
        {
            AddBody(random, sequence, requestBody, requestTrailers, isRequest: true);
        }

        sequence.Add(ResponseHeaders(contentType: random.Next(2) == 0 ? "text/event-stream" : "application/json"));
        AddBody(random, sequence, RandomBody(random), random.Next(6) == 0, isRequest: false);

        if (random.Next(10) == 0)
        {
            Corrupt(random, sequence);
        }

        return (sequence, requestMode == BodySendMode.FullDuplexStreamed || responseMode == BodySendMode.FullDuplexStreamed);
    }

    private static void AddBody(Random random, List<ProcessingRequest> sequence, byte[] body, bool trailers, bool isRequest)
    {
        var offset = 0;
        do
        {
            var take = Math.Min(body.Length - offset, random.Next(1, 64));
            var last = offset + take == body.Length;
            var chunk = body.AsSpan(offset, take);
            sequence.Add(isRequest ? RequestBody(chunk, last && !trailers) : ResponseBody(chunk, last && !trailers));
            offset += take;
        }
        while (offset < body.Length);

        if (trailers)
        {
            sequence.Add(isRequest
                ? RequestTrailers(("x-t", "1"))
                : new ProcessingRequest { ResponseTrailers = new HttpTrailers { Trailers = new() } });
        }
    }

    private static byte[] RandomBody(Random random) => random.Next(5) switch
    {
        0 => [],
        1 => Utf8(SampleChatBody),
        2 => RandomBytes(random, random.Next(1, 300)),
        3 => RandomBytes(random, random.Next(4000, 6000)), // over the 4 KiB cap used here
        _ => Utf8("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}"""),
    };

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static void Corrupt(Random random, List<ProcessingRequest> sequence)
    {
        switch (random.Next(4))
        {
            case 0:
                sequence.Insert(random.Next(sequence.Count + 1), new ProcessingRequest());
                break;
            case 1:
                sequence.Insert(random.Next(1, sequence.Count + 1), sequence[0].Clone());
                break;
            case 2:
                var i = random.Next(sequence.Count);
                var j = random.Next(sequence.Count);
                (sequence[i], sequence[j]) = (sequence[j], sequence[i]);
                break;
            default:
                sequence.RemoveAt(0);
                break;
        }
    }
}
