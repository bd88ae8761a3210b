using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToAnthropic;

/// <summary>
/// OpenAI Chat Completions client → Anthropic Messages upstream (providers.md §6.1–6.3): system and
/// developer messages hoisted, tool results of a turn grouped into one user message, arguments strings
/// parsed into objects, and responses (buffered, streamed, errors) written back as OpenAI.
/// </summary>
internal sealed class OpenAIToAnthropicTranslator : TranslationDirection
{
    public static readonly OpenAIToAnthropicTranslator Instance = new();

    public override ProtocolKind Client => ProtocolKind.OpenAiChat;

    public override ProtocolKind Upstream => ProtocolKind.AnthropicMessages;

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
            if (AnthropicRequestWriter.Write(document, request, translated, input.DefaultMaxTokens, output) is { } unsupported)
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
            return AnthropicResponseReader.WriteOpenAI(document, status, state, output);
        }
        finally
        {
            JsonRead.Release(rented, document.Length);
        }
    }

    public override IStreamTranslator CreateStreamTranslator(TranslationState state) => new AnthropicToOpenAIStream(state);
}
