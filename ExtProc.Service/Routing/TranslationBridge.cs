using System.Buffers;
using ExtProc.Buffers;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Translation;

namespace ExtProc.Routing;

/// <summary>
/// Carries a request to a target that speaks another format (or an OpenAI-compatible dialect) and its answer
/// back: the request body through the direction's request translator, then — from the response headers on —
/// a buffered answer (error bodies included) as one document, or an SSE answer chunk by chunk.
/// </summary>
internal static class TranslationBridge
{
    /// <summary>True when <paramref name="client"/> requests can be carried to <paramref name="provider"/>: same format, or a translator.</summary>
    public static bool CanServe(ProtocolKind client, Provider provider) =>
        (client == provider.Config.Protocol && provider.Config.Dialect == UpstreamDialect.Standard)
        || Translators.TryGet(client, provider.Config.Protocol, provider.Config.Dialect, out _);

    /// <summary>
    /// Translates the request body for <paramref name="target"/> when its format differs; null when done (or
    /// not needed), else the error to answer in the client's dialect.
    /// </summary>
    public static TranslationError? TranslateRequest(ProcessingContext context, RouteState state, Target target, TimeProvider time)
    {
        var provider = target.Provider.Config;
        if (!Translators.TryGet(context.Protocol, provider.Protocol, provider.Dialect, out var direction))
        {
            return null;
        }

        var body = context.RequestBody.Replacement ?? context.RequestBody.Content;
        var writer = new PooledBufferWriter(body.Length + 512);
        var input = new RequestTranslationInput(target.UpstreamModel, context.RequestId, time.GetUtcNow().ToUnixTimeSeconds());
        var result = direction!.TranslateRequest(new ReadOnlySequence<byte>(body), input, writer, out var translation);
        if (result.Status == TranslationStatus.Failed)
        {
            writer.Dispose();
            return result.Error;
        }

        if (result.Status == TranslationStatus.Rewritten)
        {
            context.RequestBody.Replace(writer);
        }
        else
        {
            writer.Dispose();
        }

        if (context.Limits is { StripUsageChunk: true } && translation is not null)
        {
            // Limits forced include_usage on a client that did not ask: the usage is for settlement, not for the client.
            translation.IncludeUsage = false;
        }

        state.Translation = direction;
        state.TranslationState = translation;
        return null;
    }

    /// <summary>Response headers: asks for the body the way the answer comes (SSE chunk by chunk, else whole).</summary>
    public static void OnResponseHeaders(ProcessingContext context, RouteState state)
    {
        if (state.Translation is not { } direction || state.TranslationState is not { } translation)
        {
            return;
        }

        var status = RouteStatus.Of(context);
        var sse = context.ResponseHeaders!.TryGetSingle("content-type", out var type) && type.Span.IndexOf("text/event-stream"u8) >= 0;
        if (sse && status is >= 200 and < 300)
        {
            state.Stream = new StreamTranslation(direction.CreateStreamTranslator(translation));
            context.ResponseRewriter = state.Stream;
            context.ResponseBodyHandling = ResponseBodyHandling.Streamed;

            // The translated stream has another length; Envoy streams it chunked.
            context.ResponseMutations.Remove("content-length");
            return;
        }

        context.ResponseBody.Needed = true;
        context.ResponseBodyHandling = ResponseBodyHandling.Buffered;
    }

    /// <summary>A whole answer (or error body): translated into the client's format, status kept or made 502.</summary>
    public static StageResult OnResponseBody(ProcessingContext context, RouteState state)
    {
        if (state.Translation is not { } direction || state.TranslationState is not { } translation || state.Stream is not null
            || !context.ResponseBody.Complete)
        {
            return StageResult.Continue;
        }

        var body = context.ResponseBody.Content;
        var status = RouteStatus.Of(context);
        var writer = new PooledBufferWriter(body.Length + 512);
        var result = direction.TranslateResponse(new ReadOnlySequence<byte>(body), status, translation, writer);
        switch (result.Status)
        {
            case TranslationStatus.Rewritten:
                context.ResponseBody.Replace(writer);
                if (result.HttpStatus != status)
                {
                    context.ResponseMutations.Set(":status", result.HttpStatus.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                return StageResult.Continue;
            case TranslationStatus.Failed:
                writer.Dispose();
                return StageResult.Respond(ErrorResponses.Create(context, result.Error!.Value.Error, result.Error.Value.Message));
            default:
                writer.Dispose();
                return StageResult.Continue;
        }
    }

    /// <summary>One SSE answer through its stream translator; the output buffer is reused chunk after chunk.</summary>
    internal sealed class StreamTranslation : IStreamedBodyRewriter, IDisposable
    {
        private readonly IStreamTranslator _translator;
        private readonly PooledBufferWriter _output = new(4096);

        public StreamTranslation(IStreamTranslator translator) => _translator = translator;

        public bool TryRewrite(ReadOnlyMemory<byte> chunk, bool endOfStream, out ReadOnlyMemory<byte> replacement)
        {
            // The engine copies the replacement into its reply before the next chunk arrives.
            _output.Clear();
            _translator.Process(new ReadOnlySequence<byte>(chunk), endOfStream, _output);
            replacement = _output.WrittenMemory;
            return true;
        }

        public void Dispose()
        {
            _translator.Dispose();
            _output.Dispose();
        }
    }
}

/// <summary>The response status as a number (0 when absent or unreadable).</summary>
internal static class RouteStatus
{
    public static int Of(ProcessingContext context) =>
        context.ResponseHeaders is { } headers && headers.TryGetSingle(":status", out var raw)
            && int.TryParse(raw.Span, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var status) ? status : 0;
}
