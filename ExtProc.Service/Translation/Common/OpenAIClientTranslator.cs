using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;

namespace ExtProc.Translation.Common;

/// <summary>
/// An OpenAI Chat Completions client in front of an upstream of another format: reading the client request,
/// the translation state and the buffered-response plumbing are the same for every such direction; a
/// direction supplies only its request writer, response reader and stream translator.
/// </summary>
internal abstract class OpenAIClientTranslator : TranslationDirection
{
    public sealed override ProtocolKind Client => ProtocolKind.OpenAiChat;

    public sealed override UpstreamDialect Dialect => UpstreamDialect.Standard;

    public sealed override TranslationResult TranslateRequest(
        ReadOnlySequence<byte> clientBody, in RequestTranslationInput input, IBufferWriter<byte> output, out TranslationState? state)
    {
        state = null;
        var document = JsonRead.Contiguous(clientBody, out var rented);
        var request = default(OpenAIRequest);
        try
        {
            if (OpenAIRequest.Read(document, out request) is { } refused)
            {
                return TranslationResult.Fail(TranslationErrors.InvalidBody, refused);
            }

            var clientModel = JsonRead.GetString(document, request.Model) ?? string.Empty;
            var translated = new TranslationState(UpstreamDialect.Standard, clientModel, input.UpstreamModel ?? clientModel, input.RequestId, input.CreatedUnixSeconds)
            {
                Stream = request.IsStream(document),
                IncludeUsage = request.IncludeUsage(document),
            };
            if (WriteRequest(document, request, translated, input.DefaultMaxTokens, output) is { } unsupported)
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

    public sealed override TranslationResult TranslateResponse(ReadOnlySequence<byte> upstreamBody, int status, TranslationState state, IBufferWriter<byte> output)
    {
        var document = JsonRead.Contiguous(upstreamBody, out var rented);
        try
        {
            return WriteResponse(document, status, state, output);
        }
        finally
        {
            JsonRead.Release(rented, document.Length);
        }
    }

    /// <summary>Writes the upstream request; null when done, else why it cannot be carried.</summary>
    protected abstract string? WriteRequest(ReadOnlySpan<byte> document, in OpenAIRequest request, TranslationState state, int defaultMaxTokens, IBufferWriter<byte> output);

    /// <summary>Writes the upstream's buffered answer (or error body) as an OpenAI one.</summary>
    protected abstract TranslationResult WriteResponse(ReadOnlySpan<byte> document, int status, TranslationState state, IBufferWriter<byte> output);
}
