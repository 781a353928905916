export default function ChatHome() {
  return <p className="placeholder" data-testid="no-conversation">Pick someone to chat with.</p>;
}
