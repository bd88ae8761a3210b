using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.AnthropicToOpenAI;

/// <summary>
/// Anthropic Messages client → OpenAI-format upstream (providers.md §6.4–6.6), one instance per upstream
/// dialect (DeepSeek reasoning echo, Mistral ids / role order / <c>any</c>, max-token field names).
/// </summary>
internal sealed class AnthropicToOpenAITranslator : TranslationDirection
{
    private static readonly AnthropicToOpenAITranslator[] Instances =
    [
        new(UpstreamDialect.Standard), new(UpstreamDialect.DeepSeek), new(UpstreamDialect.Qwen), new(UpstreamDialect.Mistral), new(UpstreamDialect.Azure),
    ];

    private AnthropicToOpenAITranslator(UpstreamDialect dialect) => Dialect = dialect;

    public static AnthropicToOpenAITranslator For(UpstreamDialect dialect) => Instances[(int)dialect];

    public override ProtocolKind Client => ProtocolKind.AnthropicMessages;

    public override ProtocolKind Upstream => ProtocolKind.OpenAiChat;

    public override UpstreamDialect Dialect { get; }

    public override TranslationResult TranslateRequest(
        ReadOnlySequence<byte> clientBody, in RequestTranslationInput input, IBufferWriter<byte> output, out TranslationState? state)
    {
        state = null;
        var document = JsonRead.Contiguous(clientBody, out var rented);
        var request = default(AnthropicRequest);
        try
        {
            if (AnthropicRequest.Read(document, out request) is { } refused)
            {
                return TranslationResult.Fail(TranslationErrors.InvalidBody, refused);
            }

            var clientModel = JsonRead.GetString(document, request.Model) ?? string.Empty;
            var translated = new TranslationState(Dialect, clientModel, input.UpstreamModel ?? clientModel, input.RequestId, input.CreatedUnixSeconds)
            {
                Stream = JsonRead.IsTrue(document, request.Stream),
            };
            if (OpenAIRequestWriter.Write(document, request, translated, output) is { } unsupported)
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
            request.Dispose();
            JsonRead.Release(rented, document.Length);
        }
    }

    public override TranslationResult TranslateResponse(ReadOnlySequence<byte> upstreamBody, int status, TranslationState state, IBufferWriter<byte> output)
    {
        var document = JsonRead.Contiguous(upstreamBody, out var rented);
        try
        {
            return AnthropicResponseWriter.Write(document, status, state, output);
        }
        finally
        {
            JsonRead.Release(rented, document.Length);
        }
    }

    public override IStreamTranslator CreateStreamTranslator(TranslationState state) => new OpenAIToAnthropicStream(state);
}
