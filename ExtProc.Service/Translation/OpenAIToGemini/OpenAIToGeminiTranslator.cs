using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>
/// OpenAI Chat Completions client → Gemini generateContent / streamGenerateContent upstream. The body is
/// ours; the routing stage builds the path (<c>models/{model}:generateContent</c>, or
/// <c>:streamGenerateContent?alt=sse</c> when <see cref="TranslationState.Stream"/> is true).
/// </summary>
internal sealed class OpenAIToGeminiTranslator : TranslationDirection
{
    public static readonly OpenAIToGeminiTranslator Instance = new();

    public override ProtocolKind Client => ProtocolKind.OpenAiChat;

    public override ProtocolKind Upstream => ProtocolKind.Gemini;

    public override UpstreamDialect Dialect => UpstreamDialect.Standard;

    public override TranslationResult TranslateRequest(
        ReadOnlySequence<byte> clientBody, in RequestTranslationInput input, IBufferWriter<byte> output, out TranslationState? state)
    {
        state = null;
        var document = JsonRead.Contiguous(clientBody, out var rented);
        try
        {
            if (OpenAIRequest.Read(document, out var request) is { } refused)
            {
                return TranslationResult.Fail(TranslationErrors.InvalidBody, refused);
            }

            var clientModel = JsonRead.GetString(document, request.Model) ?? string.Empty;
            var translated = new TranslationState(UpstreamDialect.Standard, clientModel, input.UpstreamModel ?? clientModel, input.RequestId, input.CreatedUnixSeconds)
            {
                Stream = request.IsStream(document),
                IncludeUsage = request.IncludeUsage(document),
            };
            if (GeminiRequestWriter.Write(document, request, translated, output) is { } unsupported)
            {
                return TranslationResult.Fail(TranslationErrors.Unsupported, unsupported);
            }

            state = translated;
            return TranslationResult.Rewritten();
        }
        catch (JsonException)
        {
            return TranslationResult.Fail(TranslationErrors.InvalidBody, "The request body is not valid JSON for this API.");
        }
        finally
        {
            JsonRead.Release(rented, document.Length);
        }
    }

    public override TranslationResult TranslateResponse(ReadOnlySequence<byte> upstreamBody, int status, TranslationState state, IBufferWriter<byte> output)
    {
        var document = JsonRead.Contiguous(upstreamBody, out var rented);
        try
        {
            return GeminiResponseReader.WriteOpenAI(document, status, state, output);
        }
        finally
        {
            JsonRead.Release(rented, document.Length);
        }
    }

    public override IStreamTranslator CreateStreamTranslator(TranslationState state) => new GeminiToOpenAIStream(state);
}
