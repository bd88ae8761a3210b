using System.Buffers;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToAnthropic;

/// <summary>
/// OpenAI Chat Completions client → Anthropic Messages upstream (providers.md §6.1–6.3): system and
/// developer messages hoisted, tool results of a turn grouped into one user message, arguments strings
/// parsed into objects, and responses (buffered, streamed, errors) written back as OpenAI.
/// </summary>
internal sealed class OpenAIToAnthropicTranslator : OpenAIClientTranslator
{
    public static readonly OpenAIToAnthropicTranslator Instance = new();

    public override ProtocolKind Upstream => ProtocolKind.AnthropicMessages;

    public override IStreamTranslator CreateStreamTranslator(TranslationState state) => new AnthropicToOpenAIStream(state);

    protected override string? WriteRequest(ReadOnlySpan<byte> document, in OpenAIRequest request, TranslationState state, int defaultMaxTokens, IBufferWriter<byte> output) =>
        AnthropicRequestWriter.Write(document, request, state, defaultMaxTokens, output);

    protected override TranslationResult WriteResponse(ReadOnlySpan<byte> document, int status, TranslationState state, IBufferWriter<byte> output) =>
        AnthropicResponseReader.WriteOpenAI(document, status, state, output);
}
